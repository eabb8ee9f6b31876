//! Standard base64 (RFC 4648, padded), the `body_encoding` kombu uses on Redis.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const INVALID: u8 = 0xff;

const fn decode_table() -> [u8; 256] {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 64 {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
}

static DECODE: [u8; 256] = decode_table();

/// Appends the base64 text of `input` to `out`.
pub(crate) fn encode_into(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(input.len().div_ceil(3) * 4);
    let mut chunks = input.chunks_exact(3);
    for c in &mut chunks {
        let n = (u32::from(c[0]) << 16) | (u32::from(c[1]) << 8) | u32::from(c[2]);
        out.extend_from_slice(&[
            ALPHABET[(n >> 18) as usize & 63],
            ALPHABET[(n >> 12) as usize & 63],
            ALPHABET[(n >> 6) as usize & 63],
            ALPHABET[n as usize & 63],
        ]);
    }
    match *chunks.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out.extend_from_slice(&[
                ALPHABET[(n >> 18) as usize & 63],
                ALPHABET[(n >> 12) as usize & 63],
                b'=',
                b'=',
            ]);
        }
        [a, b] => {
            let n = (u32::from(a) << 16) | (u32::from(b) << 8);
            out.extend_from_slice(&[
                ALPHABET[(n >> 18) as usize & 63],
                ALPHABET[(n >> 12) as usize & 63],
                ALPHABET[(n >> 6) as usize & 63],
                b'=',
            ]);
        }
        _ => {}
    }
}

/// The bytes `input` encodes; `None` when it is not base64. Padding may be omitted.
pub(crate) fn decode(input: &[u8]) -> Option<Vec<u8>> {
    let trimmed = match input {
        [rest @ .., b'=', b'='] | [rest @ .., b'='] => rest,
        all => all,
    };
    if trimmed.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(trimmed.len() / 4 * 3 + 3);
    let mut chunks = trimmed.chunks_exact(4);
    for c in &mut chunks {
        let n = sextets(c)?;
        out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let n = sextets(rest)? << (6 * (4 - rest.len()));
        out.push((n >> 16) as u8);
        if rest.len() == 3 {
            out.push((n >> 8) as u8);
        }
    }
    Some(out)
}

fn sextets(chars: &[u8]) -> Option<u32> {
    chars.iter().try_fold(0u32, |n, &c| {
        let v = DECODE[c as usize];
        (v != INVALID).then_some((n << 6) | u32::from(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(input: &[u8]) -> String {
        let mut out = Vec::new();
        encode_into(input, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rfc4648_vectors_round_trip() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, coded) in vectors {
            assert_eq!(encode(plain.as_bytes()), coded);
            assert_eq!(decode(coded.as_bytes()).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn every_byte_value_round_trips_at_every_length() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for len in 0..40 {
            let coded = encode(&data[..len]);
            assert_eq!(decode(coded.as_bytes()).unwrap(), &data[..len]);
        }
    }

    #[test]
    fn unpadded_input_is_accepted_and_garbage_rejected() {
        assert_eq!(decode(b"Zm8").unwrap(), b"fo");
        assert!(decode(b"Zm9v!").is_none());
        assert!(decode(b"Z").is_none());
    }
}
