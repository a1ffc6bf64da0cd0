/**
 * The demo's throwaway certificate loads whatever its random serial is. Regression: a serial whose
 * first random byte came out 0x00 (then a byte under 0x80) was a non-minimal INTEGER, and about
 * one demo run in 512 failed with ERR_OSSL_ASN1_ILLEGAL_PADDING.
 */
import { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { makeDemoCertificate } from '../../lib/cli/demo-cert';

test.each([0x00, 0x01, 0x3f, 0x7f, 0x80, 0xff])(
  'a serial drawn with first byte %i loads in X509Certificate and a secure context',
  (first) => {
    for (const second of [0x00, 0x7f, 0x80]) {
      const random = Buffer.alloc(16, 0x5a);
      random[0] = first;
      random[1] = second;
      const { cert, key } = makeDemoCertificate(new Date(), random);
      const parsed = new X509Certificate(cert);
      expect(parsed.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1');
      expect(/^[1-7]/.test(parsed.serialNumber)).toBe(true); // positive, minimal: 0x40..0x7f leads
      expect(() => createSecureContext({ cert, key })).not.toThrow();
    }
  },
);
