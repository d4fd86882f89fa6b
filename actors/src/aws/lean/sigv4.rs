//! AWS Signature Version 4 for the lean client's requests, written for one shape of request: a
//! `POST /` with no query string and a handful of headers, signed in the `Authorization` header.
//!
//! What the SDK's signer does per request and this one does not: build a `CanonicalRequest`
//! value of owned strings, derive the signing key (four HMACs), format the scope and the date
//! anew. Here the signing key is derived once per day and key pair and kept as the two SHA-256
//! states its HMAC starts from, so a request costs one SHA-256 of the body, one of the canonical
//! request (a few hundred bytes, in a reused buffer) and one HMAC of the string to sign.
//!
//! Checked against AWS's published signing test suite (`get-vanilla`,
//! `post-x-www-form-urlencoded`, `post-sts-header-after`) in the tests below.

use sha2::{Digest, Sha256};

/// The algorithm name in the string to sign and the `Authorization` header.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// SHA-256's block size, the length HMAC pads its key to.
const BLOCK: usize = 64;

/// HMAC-SHA256 with its key already absorbed: the inner and outer hash states after the padded
/// key block, cloned for each message (saves two compressions of the four per HMAC).
#[derive(Clone)]
pub(crate) struct HmacKey {
    /// SHA-256 after `key ^ ipad`.
    inner: Sha256,
    /// SHA-256 after `key ^ opad`.
    outer: Sha256,
}

impl HmacKey {
    /// Prepares `key` (hashed first when longer than a block, as HMAC says).
    pub(crate) fn new(key: &[u8]) -> Self {
        let mut block = [0u8; BLOCK];
        if key.len() > BLOCK {
            block[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let mut ipad = [0x36u8; BLOCK];
        let mut opad = [0x5cu8; BLOCK];
        for i in 0..BLOCK {
            ipad[i] ^= block[i];
            opad[i] ^= block[i];
        }
        let mut inner = Sha256::new();
        inner.update(ipad);
        let mut outer = Sha256::new();
        outer.update(opad);
        Self { inner, outer }
    }

    /// The HMAC of `message`.
    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 32] {
        let mut inner = self.inner.clone();
        inner.update(message);
        let mut outer = self.outer.clone();
        outer.update(inner.finalize());
        outer.finalize().into()
    }
}

/// `HMAC(key, message)` for the key derivation.
fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    HmacKey::new(key).sign(message)
}

/// The signing key of one day, region and service: `kSigning` of the SigV4 derivation.
pub(crate) fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> HmacKey {
    let mut secret_key = Vec::with_capacity(4 + secret.len());
    secret_key.extend_from_slice(b"AWS4");
    secret_key.extend_from_slice(secret.as_bytes());
    let k_date = hmac(&secret_key, date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    HmacKey::new(&hmac(&k_service, b"aws4_request"))
}

/// Lower-case hex of `bytes`, appended to `out`.
pub(crate) fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)]);
        out.push(DIGITS[usize::from(byte & 0x0f)]);
    }
}

/// One request to sign: no query string, a path that needs no encoding.
pub(crate) struct Signable<'a> {
    /// `POST` or `GET`.
    pub method: &'a str,
    /// The path (`/` unless the endpoint names one).
    pub path: &'a str,
    /// Headers to sign as (lower-case name, value), sorted by name, values already trimmed.
    pub headers: &'a [(&'a str, &'a str)],
    /// The request body.
    pub body: &'a [u8],
    /// `YYYYMMDD'T'HHMMSS'Z'`, also in the `x-amz-date` header among `headers`.
    pub amz_date: &'a str,
    /// `YYYYMMDD/region/service/aws4_request`.
    pub scope: &'a str,
}

/// Writes the `Authorization` header's value for `request` into `out` (cleared first), using
/// `scratch` for the canonical request and the string to sign.
pub(crate) fn authorization(
    request: &Signable<'_>,
    access_key_id: &str,
    key: &HmacKey,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) {
    // The canonical request: method, path, query, headers, signed header names, body hash.
    scratch.clear();
    scratch.extend_from_slice(request.method.as_bytes());
    scratch.push(b'\n');
    scratch.extend_from_slice(request.path.as_bytes());
    scratch.extend_from_slice(b"\n\n");
    for (name, value) in request.headers {
        scratch.extend_from_slice(name.as_bytes());
        scratch.push(b':');
        scratch.extend_from_slice(value.as_bytes());
        scratch.push(b'\n');
    }
    scratch.push(b'\n');
    let signed_start = scratch.len();
    for (i, (name, _)) in request.headers.iter().enumerate() {
        if i > 0 {
            scratch.push(b';');
        }
        scratch.extend_from_slice(name.as_bytes());
    }
    let signed_end = scratch.len();
    scratch.push(b'\n');
    push_hex(scratch, &Sha256::digest(request.body));
    let canonical_hash = Sha256::digest(&scratch[..]);

    // `out` holds the signed header names while the string to sign reuses `scratch`.
    out.clear();
    out.extend_from_slice(ALGORITHM.as_bytes());
    out.extend_from_slice(b" Credential=");
    out.extend_from_slice(access_key_id.as_bytes());
    out.push(b'/');
    out.extend_from_slice(request.scope.as_bytes());
    out.extend_from_slice(b", SignedHeaders=");
    out.extend_from_slice(&scratch[signed_start..signed_end]);
    out.extend_from_slice(b", Signature=");

    scratch.clear();
    scratch.extend_from_slice(ALGORITHM.as_bytes());
    scratch.push(b'\n');
    scratch.extend_from_slice(request.amz_date.as_bytes());
    scratch.push(b'\n');
    scratch.extend_from_slice(request.scope.as_bytes());
    scratch.push(b'\n');
    push_hex(scratch, &canonical_hash);
    push_hex(out, &key.sign(scratch));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test suite's key pair, date, region and service.
    const ACCESS_KEY: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const DATE: &str = "20150830T123600Z";
    const SCOPE: &str = "20150830/us-east-1/service/aws4_request";

    fn sign(method: &str, headers: &[(&str, &str)], body: &[u8]) -> String {
        let key = signing_key(SECRET, "20150830", "us-east-1", "service");
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
        let request = Signable {
            method,
            path: "/",
            headers,
            body,
            amz_date: DATE,
            scope: SCOPE,
        };
        authorization(&request, ACCESS_KEY, &key, &mut scratch, &mut out);
        String::from_utf8(out).expect("ASCII")
    }

    /// aws-signing-test-suite/v4/get-vanilla.
    #[test]
    fn get_vanilla_matches_the_published_signature() {
        let header = sign(
            "GET",
            &[("host", "example.amazonaws.com"), ("x-amz-date", DATE)],
            b"",
        );
        assert_eq!(
            header,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    /// aws-signing-test-suite/v4/post-x-www-form-urlencoded (the body signed, and its hash sent
    /// as `x-amz-content-sha256`).
    #[test]
    fn post_x_www_form_urlencoded_matches_the_published_signature() {
        let header = sign(
            "POST",
            &[
                ("content-length", "13"),
                ("content-type", "application/x-www-form-urlencoded"),
                ("host", "example.amazonaws.com"),
                (
                    "x-amz-content-sha256",
                    "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
                ),
                ("x-amz-date", DATE),
            ],
            b"Param1=value1",
        );
        assert!(
            header.ends_with(
                "SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date, \
                 Signature=d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b"
            ),
            "{header}"
        );
    }

    /// aws-signing-test-suite/v4/post-sts-header-after: a POST with an empty body.
    #[test]
    fn post_sts_header_after_matches_the_published_signature() {
        let header = sign(
            "POST",
            &[("host", "example.amazonaws.com"), ("x-amz-date", DATE)],
            b"",
        );
        assert!(
            header.ends_with(
                "Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
            ),
            "{header}"
        );
    }

    /// RFC 4231 test case 2 (a key shorter than the block) and 6 (a key longer than it).
    #[test]
    fn hmac_matches_rfc_4231() {
        let mut out = Vec::new();
        push_hex(&mut out, &hmac(b"Jefe", b"what do ya want for nothing?"));
        assert_eq!(
            out,
            b"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        out.clear();
        push_hex(
            &mut out,
            &hmac(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
            ),
        );
        assert_eq!(
            out,
            b"60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }
}
