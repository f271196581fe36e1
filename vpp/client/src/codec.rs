//! The wire encoding of VPP's binary API, for the field types its JSON definitions use.
//!
//! Everything is packed and big-endian (`u16`…`u64`, `i8`…`i64`, `f64`, enums); `bool` is
//! one byte; a fixed array is its elements back to back; `string x[N]` is N bytes padded
//! with NULs ([`FixedString`]); `string x[0]` is a u32 length and that many bytes
//! ([`VarString`]); a variable array `T x[count]` is its elements, with the count written at
//! the earlier count field's place (the generated code does that, see `api.rs`).
//!
//! Encoding can fail only on values the wire cannot carry (a list longer than its count
//! field can count); decoding fails on truncated input and never panics, whatever the bytes.
//! This module owns the primitives; message layouts live in the generated [`crate::api`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The message ended before a field: `needed` more bytes at offset `at`. A peer speaking
    /// another layout (CRC mismatch) or a cut frame.
    #[error("message truncated: {needed} more bytes needed at offset {at} ({what})")]
    Truncated {
        needed: usize,
        at: usize,
        what: &'static str,
    },
    /// The message id is not the one the decoder was asked for.
    #[error("expected message id {expected}, got {got}")]
    WrongId { expected: u16, got: u16 },
}

/// Why a value could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A list is longer than its count field can say; send fewer elements.
    #[error("{field} has {len} elements, more than its count field can hold ({max})")]
    TooMany {
        field: &'static str,
        len: usize,
        max: u64,
    },
}

/// Bytes being decoded, with the offset reached.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    /// The offset of the next byte.
    pub fn offset(&self) -> usize {
        self.at
    }

    /// The next `n` bytes, or [`DecodeError::Truncated`] naming `what` was being read.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                needed: n - self.remaining(),
                at: self.at,
                what,
            });
        }
        let taken = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }
}

/// A value that has a VPP wire form.
pub trait Encode {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError>;
}

/// A value that can be read from its VPP wire form.
pub trait Decode: Sized {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

macro_rules! big_endian {
    ($($t:ty),*) => {$(
        impl Encode for $t {
            fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
                out.extend_from_slice(&self.to_be_bytes());
                Ok(())
            }
        }
        impl Decode for $t {
            fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
                Ok(<$t>::from_be_bytes(reader.array(stringify!($t))?))
            }
        }
    )*};
}
big_endian!(u8, u16, u32, u64, i8, i16, i32, i64, f64);

impl Encode for bool {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(u8::from(*self));
        Ok(())
    }
}

impl Decode for bool {
    /// Any non-zero byte is true, as in C.
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(reader.take(1, "bool")?[0] != 0)
    }
}

impl<T: Encode, const N: usize> Encode for [T; N] {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.iter().try_for_each(|e| e.encode(out))
    }
}

impl<T: Decode, const N: usize> Decode for [T; N] {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let elements = (0..N)
            .map(|_| T::decode(reader))
            .collect::<Result<Vec<T>, _>>()?;
        match elements.try_into() {
            Ok(array) => Ok(array),
            Err(_) => unreachable!("exactly N elements were decoded"),
        }
    }
}

/// Encodes a variable array's elements; its count was written by the caller.
pub fn encode_elements<T: Encode>(elements: &[T], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    elements.iter().try_for_each(|e| e.encode(out))
}

/// The count field's value for a variable array, or [`EncodeError::TooMany`].
pub fn count_of<C: TryFrom<usize>>(
    field: &'static str,
    len: usize,
    max: u64,
) -> Result<C, EncodeError> {
    C::try_from(len).map_err(|_| EncodeError::TooMany { field, len, max })
}

/// Decodes `count` elements of a variable array. Every element takes at least one byte, so
/// a count beyond what is left is refused before anything is allocated for it.
pub fn decode_elements<T: Decode>(
    reader: &mut Reader<'_>,
    count: usize,
    what: &'static str,
) -> Result<Vec<T>, DecodeError> {
    if count > reader.remaining() {
        return Err(DecodeError::Truncated {
            needed: count - reader.remaining(),
            at: reader.offset(),
            what,
        });
    }
    (0..count).map(|_| T::decode(reader)).collect()
}

/// `string name[N]`: at most N-1 bytes of text on the wire in exactly N bytes, NUL-padded
/// (VPP copies it as a C string, so the last byte stays NUL).
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct FixedString<const N: usize>(String);

/// A string too long for its fixed-size field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{len} bytes do not fit a {capacity}-byte string field (at most {} bytes of text)", capacity - 1)]
pub struct StringTooLong {
    pub len: usize,
    pub capacity: usize,
}

impl<const N: usize> FixedString<N> {
    /// The text, if it fits in N-1 bytes and has no NUL (which would cut it short).
    pub fn new(text: impl Into<String>) -> Result<Self, StringTooLong> {
        let text = text.into();
        if text.len() >= N || text.contains('\0') {
            return Err(StringTooLong {
                len: text.len(),
                capacity: N,
            });
        }
        Ok(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const N: usize> TryFrom<&str> for FixedString<N> {
    type Error = StringTooLong;
    fn try_from(text: &str) -> Result<Self, StringTooLong> {
        Self::new(text)
    }
}

impl<'de, const N: usize> Deserialize<'de> for FixedString<N> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl<const N: usize> fmt::Debug for FixedString<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<const N: usize> fmt::Display for FixedString<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<const N: usize> Encode for FixedString<N> {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.extend_from_slice(self.0.as_bytes());
        out.resize(out.len() + N - self.0.len(), 0);
        Ok(())
    }
}

impl<const N: usize> Decode for FixedString<N> {
    /// The text up to the first NUL (all N bytes when there is none); bytes that are not
    /// UTF-8 become U+FFFD rather than an error, since names are only shown and compared.
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let bytes = reader.take(N, "string")?;
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(N);
        let text = String::from_utf8_lossy(&bytes[..end]).into_owned();
        Ok(Self(text))
    }
}

/// `string name[0]`: a u32 length, then the bytes (VPP's `vl_api_string_t`).
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VarString(pub String);

impl VarString {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for VarString {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

impl fmt::Debug for VarString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl Encode for VarString {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let len: u32 = count_of("string", self.0.len(), u32::MAX.into())?;
        len.encode(out)?;
        out.extend_from_slice(self.0.as_bytes());
        Ok(())
    }
}

impl Decode for VarString {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let len = u32::decode(reader)? as usize;
        let bytes = reader.take(len, "string")?;
        Ok(Self(String::from_utf8_lossy(bytes).into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded<T: Encode>(value: T) -> Vec<u8> {
        let mut out = Vec::new();
        value.encode(&mut out).unwrap();
        out
    }

    #[test]
    fn scalars_are_big_endian() {
        assert_eq!(encoded(0x0102u16), [1, 2]);
        assert_eq!(encoded(-2i32), [0xff, 0xff, 0xff, 0xfe]);
        assert_eq!(encoded(1.0f64), [0x3f, 0xf0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(encoded(true), [1]);
    }

    #[test]
    fn fixed_strings_pad_and_refuse_what_does_not_fit() {
        let name = FixedString::<4>::new("abc").unwrap();
        assert_eq!(encoded(name), b"abc\0");
        assert!(FixedString::<4>::new("abcd").is_err());
        assert!(FixedString::<4>::new("a\0b").is_err());
        let full = FixedString::<4>::decode(&mut Reader::new(b"abcd")).unwrap();
        assert_eq!(full.as_str(), "abcd");
    }

    #[test]
    fn variable_strings_carry_their_length() {
        assert_eq!(encoded(VarString::from("ab")), [0, 0, 0, 2, b'a', b'b']);
        let cut = VarString::decode(&mut Reader::new(&[0, 0, 0, 9, b'a']));
        assert!(matches!(cut, Err(DecodeError::Truncated { needed: 8, .. })));
    }

    #[test]
    fn a_count_beyond_the_input_is_refused_before_allocating() {
        let mut reader = Reader::new(&[1, 2, 3]);
        let huge = decode_elements::<u8>(&mut reader, usize::MAX / 2, "list");
        assert!(matches!(huge, Err(DecodeError::Truncated { .. })));
    }
}
