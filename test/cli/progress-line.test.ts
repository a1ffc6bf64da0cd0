/** progressLine (lib/cli/output.ts), as bench:client uses it: bounded on a terminal and in a log. */
import { progressLine, type ProgressStream } from '../../lib/cli/output';

function recorder(isTTY: boolean): ProgressStream & { text: string } {
  return {
    isTTY,
    text: '',
    write(chunk: string) {
      this.text += chunk;
      return true;
    },
  };
}

test('in a log (not a terminal): one line per update, no carriage return', () => {
  const stream = recorder(false);
  const progress = progressLine(stream);
  for (let trial = 1; trial <= 3; trial++) progress.update(`TLSv1.3 trial ${trial}/3 (load 0.5)`);
  progress.done();
  expect(stream.text).toBe('TLSv1.3 trial 1/3 (load 0.5)\nTLSv1.3 trial 2/3 (load 0.5)\nTLSv1.3 trial 3/3 (load 0.5)\n');
  expect(stream.text).not.toContain('\r');
});

test('on a terminal: each update rewinds and erases the line, and done() ends it once', () => {
  const stream = recorder(true);
  const progress = progressLine(stream);
  progress.update('TLSv1.2 trial 1/2 (load 3.25)');
  progress.update('TLSv1.2 trial 2/2 (load 1)');
  progress.done();
  progress.done();
  expect(stream.text).toBe('\rTLSv1.2 trial 1/2 (load 3.25)\x1b[K\rTLSv1.2 trial 2/2 (load 1)\x1b[K\n');
  // What the terminal ends up showing: the last update alone.
  expect(stream.text.split('\r').pop()).toBe('TLSv1.2 trial 2/2 (load 1)\x1b[K\n');
});
