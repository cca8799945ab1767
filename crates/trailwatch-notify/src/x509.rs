//! Just enough PEM and DER to get an RSA public key out of an X.509 certificate.
//!
//! A full X.509 parser (`x509-parser`) would be a larger dependency than this whole crate for the
//! one thing a notification receiver needs: the certificate's public key. The walk below follows
//! RFC 5280's fixed field order and checks every tag on the way, so a malformed or non-RSA
//! certificate is an error, never a wrong key. Certificate validity, chains and names are not
//! checked: whether a certificate is trusted is decided by where it was fetched from
//! (cloud-apis.md §5.3 step 2), not by its contents.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The DER tag of a SEQUENCE.
const SEQUENCE: u8 = 0x30;
/// The DER tag of an INTEGER.
const INTEGER: u8 = 0x02;
/// The DER tag of a BIT STRING.
const BIT_STRING: u8 = 0x03;
/// The DER tag of an OBJECT IDENTIFIER.
const OID: u8 = 0x06;
/// `[0] EXPLICIT`, the version field of a v2/v3 TBSCertificate.
const CONTEXT_0: u8 = 0xa0;
/// The DER content of OID 1.2.840.113549.1.1.1 (rsaEncryption).
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// Encodes DER as PEM with 64-character lines, the layout OpenSSL and rcgen write.
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    // Base64 output is ASCII, so splitting its bytes keeps valid UTF-8.
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Decodes the first PEM block with this label.
pub(crate) fn pem_decode(pem: &str, label: &str) -> Result<Vec<u8>, String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem
        .find(&begin)
        .ok_or_else(|| format!("no \"{begin}\" line"))?
        + begin.len();
    let len = pem[start..]
        .find(&end)
        .ok_or_else(|| format!("no \"{end}\" line"))?;
    let body: String = pem[start..start + len]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD
        .decode(body)
        .map_err(|e| format!("the {label} block is not valid base64: {e}"))
}

/// One DER element: its tag, its content, and the whole encoding (tag + length + content).
struct Tlv<'a> {
    tag: u8,
    content: &'a [u8],
    whole: &'a [u8],
}

/// Reads the element at the start of `input`; returns it and what follows it.
fn read_tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), String> {
    let (&tag, after_tag) = input.split_first().ok_or("truncated DER: no tag")?;
    if tag & 0x1f == 0x1f {
        return Err("unsupported DER: multi-byte tag".into());
    }
    let (&first, after_len) = after_tag.split_first().ok_or("truncated DER: no length")?;
    let (len, header_rest) = if first < 0x80 {
        (usize::from(first), after_len)
    } else {
        let n = usize::from(first & 0x7f);
        // 0x80 is BER's indefinite length, which DER forbids; more than 4 length bytes would
        // describe an element larger than any certificate.
        if n == 0 || n > 4 || after_len.len() < n {
            return Err("invalid DER length".into());
        }
        let len = after_len[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &after_len[n..])
    };
    if header_rest.len() < len {
        return Err("truncated DER: element longer than its input".into());
    }
    let header = input.len() - header_rest.len();
    let tlv = Tlv {
        tag,
        content: &header_rest[..len],
        whole: &input[..header + len],
    };
    Ok((tlv, &header_rest[len..]))
}

/// Reads an element and checks its tag.
fn expect<'a>(input: &'a [u8], tag: u8, what: &str) -> Result<(Tlv<'a>, &'a [u8]), String> {
    let (tlv, rest) = read_tlv(input)?;
    if tlv.tag != tag {
        return Err(format!(
            "not an X.509 certificate: expected {what} (tag {tag:#04x}), found tag {:#04x}",
            tlv.tag
        ));
    }
    Ok((tlv, rest))
}

/// The SubjectPublicKeyInfo (whole DER element) of a DER certificate.
pub(crate) fn certificate_spki(cert_der: &[u8]) -> Result<&[u8], String> {
    // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
    let (cert, trailing) = expect(cert_der, SEQUENCE, "the Certificate SEQUENCE")?;
    if !trailing.is_empty() {
        return Err("data after the certificate".into());
    }
    let (tbs, _) = expect(cert.content, SEQUENCE, "the TBSCertificate SEQUENCE")?;
    // TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer,
    //                               validity, subject, subjectPublicKeyInfo, ... }
    let mut rest = tbs.content;
    let (first, after_first) = read_tlv(rest)?;
    rest = if first.tag == CONTEXT_0 {
        after_first
    } else {
        rest
    };
    let (_, after_serial) = expect(rest, INTEGER, "the serial number")?;
    rest = after_serial;
    for what in [
        "the signature algorithm",
        "the issuer",
        "the validity",
        "the subject",
    ] {
        let (_, after) = expect(rest, SEQUENCE, what)?;
        rest = after;
    }
    let (spki, _) = expect(rest, SEQUENCE, "the subject public key info")?;
    Ok(spki.whole)
}

/// The RSAPublicKey (RFC 8017) inside a SubjectPublicKeyInfo, if the key is RSA.
pub(crate) fn rsa_public_key(spki: &[u8]) -> Result<&[u8], String> {
    // SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }
    let (spki, _) = expect(spki, SEQUENCE, "the SubjectPublicKeyInfo SEQUENCE")?;
    let (algorithm, rest) = expect(spki.content, SEQUENCE, "the key algorithm")?;
    let (oid, _) = expect(algorithm.content, OID, "the key algorithm OID")?;
    if oid.content != RSA_ENCRYPTION {
        return Err("the certificate's key is not an RSA key".into());
    }
    let (bits, _) = expect(rest, BIT_STRING, "the public key BIT STRING")?;
    match bits.content.split_first() {
        // The first content byte counts unused bits; a DER-encoded key uses whole bytes.
        Some((0, key)) if !key.is_empty() => Ok(key),
        _ => Err("malformed public key BIT STRING".into()),
    }
}

/// The RSA public key of a PEM certificate, in the RSAPublicKey form aws-lc-rs verifies with.
pub(crate) fn certificate_rsa_key(cert_pem: &str) -> Result<Vec<u8>, String> {
    let der = pem_decode(cert_pem, "CERTIFICATE")?;
    let spki = certificate_spki(&der)?;
    Ok(rsa_public_key(spki)?.to_vec())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match content.len() {
            n if n < 0x80 => out.push(u8::try_from(n).unwrap()),
            n if n < 0x100 => out.extend([0x81, u8::try_from(n).unwrap()]),
            n => out.extend([
                0x82,
                u8::try_from(n >> 8).unwrap(),
                u8::try_from(n & 0xff).unwrap(),
            ]),
        }
        out.extend_from_slice(content);
        out
    }

    fn spki(oid: &[u8], bits: &[u8]) -> Vec<u8> {
        let alg = tlv(SEQUENCE, &[tlv(OID, oid), tlv(0x05, &[])].concat());
        tlv(SEQUENCE, &[alg, tlv(BIT_STRING, bits)].concat())
    }

    fn cert(version: bool, key: &[u8]) -> Vec<u8> {
        let mut tbs = Vec::new();
        if version {
            tbs.extend(tlv(CONTEXT_0, &tlv(INTEGER, &[2])));
        }
        tbs.extend(tlv(INTEGER, &[1]));
        for _ in 0..4 {
            tbs.extend(tlv(SEQUENCE, &[]));
        }
        tbs.extend_from_slice(key);
        let body = [
            tlv(SEQUENCE, &tbs),
            tlv(SEQUENCE, &[]),
            tlv(BIT_STRING, &[0]),
        ]
        .concat();
        tlv(SEQUENCE, &body)
    }

    #[test]
    fn walks_to_the_key_with_and_without_a_version() {
        let key = spki(RSA_ENCRYPTION, &[0, 0x30, 0x00]);
        for version in [true, false] {
            let der = cert(version, &key);
            let found = certificate_spki(&der).unwrap();
            assert_eq!(found, key.as_slice());
            assert_eq!(rsa_public_key(found).unwrap(), &[0x30, 0x00]);
        }
    }

    #[test]
    fn long_form_lengths() {
        let big = vec![7u8; 300];
        let der = tlv(SEQUENCE, &tlv(BIT_STRING, &big));
        let (outer, rest) = read_tlv(&der).unwrap();
        assert!(rest.is_empty());
        assert_eq!(outer.whole, der.as_slice());
        let (inner, _) = read_tlv(outer.content).unwrap();
        assert_eq!(inner.content, big.as_slice());
    }

    #[test]
    fn malformed_der_is_an_error() {
        let key = spki(RSA_ENCRYPTION, &[0, 0x30, 0x00]);
        let good = cert(true, &key);
        for bad in [
            vec![],
            vec![SEQUENCE],
            vec![SEQUENCE, 0x80, 0, 0],
            vec![SEQUENCE, 0x85, 1, 1, 1, 1, 1],
            vec![SEQUENCE, 0x82, 0x01],
            vec![0x1f, 0x01, 0x00],
            good[..good.len() - 1].to_vec(),
            [good.clone(), vec![0]].concat(),
            tlv(INTEGER, &[1]),
            cert(true, &tlv(INTEGER, &[1])),
        ] {
            assert!(certificate_spki(&bad).is_err(), "{bad:02x?}");
        }
    }

    #[test]
    fn only_plain_rsa_keys() {
        let ec = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
        assert!(
            rsa_public_key(&spki(&ec, &[0, 0x30, 0x00]))
                .unwrap_err()
                .contains("not an RSA key")
        );
        assert!(rsa_public_key(&spki(RSA_ENCRYPTION, &[1, 0x30, 0x00])).is_err());
        assert!(rsa_public_key(&spki(RSA_ENCRYPTION, &[0])).is_err());
        assert!(rsa_public_key(&spki(RSA_ENCRYPTION, &[])).is_err());
    }

    #[test]
    fn pem_round_trip() {
        let der: Vec<u8> = (0..=255).collect();
        let pem = pem_encode("CERTIFICATE", &der);
        assert!(pem.lines().all(|l| l.len() <= 64));
        assert_eq!(pem_decode(&pem, "CERTIFICATE").unwrap(), der);
        assert!(pem_decode(&pem, "PRIVATE KEY").is_err());
        assert!(pem_decode("-----BEGIN CERTIFICATE-----\nAAAA", "CERTIFICATE").is_err());
    }
}
