//! RFC 4648 base32 (no padding) as people type it: case-insensitive, dashes and spaces
//! ignored, and 0/1/8 read as the letters O/I/B they are mistaken for. Used by the text forms
//! of pairing codes and recovery phrases.

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Why text is not base32.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base32Error {
    /// A character outside the alphabet, at a 1-based position (separators not counted).
    Character {
        /// 1-based position among the characters read.
        position: usize,
        /// The character.
        character: char,
    },
    /// A number of characters that no whole number of bytes encodes.
    Length(usize),
}

/// Encodes bytes as base32 in dash-separated groups of `group` characters.
pub fn grouped(bytes: &[u8], group: usize) -> String {
    let text = encode(bytes);
    let mut out = String::with_capacity(text.len() + text.len() / group.max(1));
    for (i, c) in text.chars().enumerate() {
        if i > 0 && i % group.max(1) == 0 {
            out.push('-');
        }
        out.push(c);
    }
    out
}

/// Encodes bytes as base32 without padding.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The typed characters of `text` as 5-bit digits: separators (dashes, white space) skipped,
/// case ignored, and 0/1/8 read as O/I/B.
pub fn digits(text: &str) -> Result<Vec<u8>, Base32Error> {
    text.chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .enumerate()
        .map(|(i, c)| {
            let normalized = match c.to_ascii_uppercase() {
                '0' => 'O',
                '1' => 'I',
                '8' => 'B',
                other => other,
            };
            ALPHABET
                .iter()
                .position(|&a| char::from(a) == normalized)
                .map(|v| v as u8)
                .ok_or(Base32Error::Character {
                    position: i + 1,
                    character: c,
                })
        })
        .collect()
}

/// The alphabet character of a 5-bit digit.
pub fn char_of(digit: u8) -> char {
    char::from(ALPHABET[usize::from(digit & 31)])
}

/// Decodes typed base32, returning the bytes and the number of characters read.
pub fn decode(text: &str) -> Result<(Vec<u8>, usize), Base32Error> {
    let digits = digits(text)?;
    let mut bytes = Vec::with_capacity(digits.len() * 5 / 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for value in &digits {
        acc = (acc << 5) | u32::from(*value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            bytes.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    let chars = digits.len();
    // Leftover bits must be fewer than a character's worth, and zero.
    if bits >= 5 || acc != 0 {
        return Err(Base32Error::Length(chars));
    }
    Ok((bytes, chars))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_length() {
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let text = grouped(&bytes, 5);
            assert_eq!(
                decode(&text.to_lowercase()),
                Ok((
                    bytes,
                    encode(&(0..len).map(|i| (i * 37 + 11) as u8).collect::<Vec<_>>()).len()
                ))
            );
        }
        assert_eq!(decode("MY"), Ok((b"f".to_vec(), 2)));
        assert_eq!(
            decode("M!"),
            Err(Base32Error::Character {
                position: 2,
                character: '!'
            })
        );
    }
}
