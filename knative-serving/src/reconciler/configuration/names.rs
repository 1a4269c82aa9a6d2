//! Child names as Knative makes them (knative.dev/pkg `kmeta.ChildName`), and the MD5 digest
//! they need.

/// The longest name Kubernetes allows for most objects (a DNS-1123 label).
const LONGEST: usize = 63;
/// The length of an MD5 digest in hex.
const MD5_HEX_LEN: usize = 32;

/// `parent + suffix`, or, when that exceeds 63 characters, the parent cut short and followed by
/// the MD5 of the whole parent (hex) before the suffix, so that distinct long parents keep
/// distinct children (knative.dev/pkg `kmeta.ChildName`).
pub(crate) fn child_name(parent: &str, suffix: &str) -> String {
    if parent.len() + suffix.len() <= LONGEST {
        return format!("{parent}{suffix}");
    }
    let head = LONGEST - MD5_HEX_LEN;
    if head <= suffix.len() {
        // The suffix leaves no room for the parent: hash everything, keep what fits.
        let digest = hex(&md5(format!("{parent}{suffix}").as_bytes()));
        let kept: String = parent.chars().take(head).collect();
        let mut name = format!("{kept}{digest}");
        let room = LONGEST.saturating_sub(name.len());
        name.extend(suffix.chars().take(room));
        return trim_invalid_end(name);
    }
    let kept: String = parent.chars().take(head - suffix.len()).collect();
    format!("{kept}{}{suffix}", hex(&md5(parent.as_bytes())))
}

fn trim_invalid_end(mut name: String) -> String {
    while name.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        name.pop();
    }
    name
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// MD5 (RFC 1321): only for stable short names, never for security.
pub(crate) fn md5(input: &[u8]) -> [u8; 16] {
    const SHIFTS: [u32; 16] = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
    let constants: Vec<u32> = (0..64)
        .map(|i: u32| (f64::from(i + 1).sin().abs() * 4_294_967_296.0) as u32)
        .collect();
    let mut state: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

    let mut message = input.to_vec();
    let bit_len = (input.len() as u64).wrapping_mul(8);
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bit_len.to_le_bytes());

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
                .wrapping_add(constants[i])
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
    for (i, word) in state.iter().enumerate() {
        digest[i * 4..i * 4 + 4].copy_from_slice(&word.to_le_bytes());
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
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(hex(&md5(input.as_bytes())), want, "{input:?}");
        }
    }

    #[test]
    fn short_names_are_parent_and_suffix() {
        assert_eq!(child_name("hello", "-00001"), "hello-00001");
        let parent = "a".repeat(57);
        assert_eq!(child_name(&parent, "-00001"), format!("{parent}-00001"));
    }

    #[test]
    fn long_names_keep_a_prefix_and_the_parents_digest() {
        let parent = "a".repeat(60);
        let name = child_name(&parent, "-00001");
        assert_eq!(name.len(), 63);
        assert_eq!(
            name,
            format!("{}{}-00001", "a".repeat(25), hex(&md5(parent.as_bytes())))
        );
    }

    #[test]
    fn a_suffix_too_long_for_a_prefix_hashes_everything() {
        let suffix = format!("-{}", "s".repeat(40));
        let name = child_name("parent", &suffix);
        assert!(name.len() <= 63, "{name}");
        assert!(name.starts_with("parent"));
    }
}
