//! The names of a Revision's children (Knative's `resources/names` and knative.dev/pkg's
//! `kmeta.ChildName`).

/// The longest name Kubernetes allows for most objects (a DNS-1123 label).
const LONGEST: usize = 63;
/// The length of an MD5 sum in hexadecimal.
const MD5_HEX_LEN: usize = 32;

/// `kmeta.ChildName`: `parent + suffix`, or, when that would exceed 63 characters, the start
/// of `parent`, the MD5 of all of `parent` and then `suffix`, 63 characters in all, so that
/// long parents still get distinct, valid children.
pub(crate) fn child_name(parent: &str, suffix: &str) -> String {
    if parent.len() + suffix.len() <= LONGEST {
        return format!("{parent}{suffix}");
    }
    let digest = hex(&md5(parent.as_bytes()));
    if suffix.len() + MD5_HEX_LEN >= LONGEST {
        // No room for any of the parent: hash everything (pkg keeps a valid tail of the suffix;
        // no Revision child has a suffix this long).
        return hex(&md5(format!("{parent}{suffix}").as_bytes()));
    }
    let mut head = LONGEST - MD5_HEX_LEN - suffix.len();
    while !parent.is_char_boundary(head) {
        head -= 1;
    }
    format!("{}{digest}{suffix}", &parent[..head])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// MD5 (RFC 1321), which Knative uses to shorten names; not for anything secret.
fn md5(input: &[u8]) -> [u8; 16] {
    const SHIFTS: [u32; 16] = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
    // K[i] = floor(|sin(i + 1)| * 2^32), as RFC 1321 defines it.
    let k: Vec<u32> = (1..=64u32)
        .map(|i| (f64::from(i).sin().abs() * 4_294_967_296.0) as u32)
        .collect();

    let mut message = input.to_vec();
    let bit_len = (input.len() as u64).wrapping_mul(8);
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bit_len.to_le_bytes());

    let mut state: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    for block in message.chunks_exact(64) {
        let words: Vec<u32> = block
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let [mut a, mut b, mut c, mut d] = state;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let rotated = a
                .wrapping_add(f)
                .wrapping_add(k[i])
                .wrapping_add(words[g])
                .rotate_left(SHIFTS[(i / 16) * 4 + i % 4]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(rotated);
        }
        state[0] = state[0].wrapping_add(a);
        state[1] = state[1].wrapping_add(b);
        state[2] = state[2].wrapping_add(c);
        state[3] = state[3].wrapping_add(d);
    }
    let mut digest = [0u8; 16];
    for (chunk, word) in digest.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    digest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_matches_the_rfc_1321_test_suite() {
        let cases = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                "abcdefghijklmnopqrstuvwxyz",
                "c3fcd3d76192e4007dfb496cca67e13b",
            ),
            (
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                "d174ab98d277d9f5a5611c2c9f419d9f",
            ),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(hex(&md5(input.as_bytes())), want, "md5({input:?})");
        }
    }

    #[test]
    fn short_names_are_concatenated() {
        assert_eq!(
            child_name("hello-00001", "-deployment"),
            "hello-00001-deployment"
        );
    }

    #[test]
    fn long_names_keep_their_start_and_hash_the_rest_into_63_characters() {
        let parent = "a".repeat(60);
        let name = child_name(&parent, "-deployment");
        assert_eq!(name.len(), 63);
        assert_eq!(
            name,
            format!(
                "{}{}-deployment",
                "a".repeat(20),
                hex(&md5(parent.as_bytes()))
            )
        );
    }

    #[test]
    fn a_name_of_exactly_63_characters_is_kept() {
        let parent = "b".repeat(52);
        assert_eq!(
            child_name(&parent, "-deployment"),
            format!("{parent}-deployment")
        );
    }
}
