//! The chunked transfer coding's grammar (RFC 9112 §7.1), checked byte by byte as an upstream's
//! chunked body passes through the direct path: what it lets through, any HTTP/1.1 parser
//! downstream frames the same way.

/// Most trailer fields a chunked body may end with: a parser downstream reads them into a
/// table of its own, as it does a head's fields.
const MAX_TRAILER_FIELDS: u32 = 64;

/// `next` when `byte` is the one the grammar wants here.
fn expect(byte: u8, wanted: u8, next: ChunkState) -> Result<ChunkState, ()> {
    if byte == wanted { Ok(next) } else { Err(()) }
}

/// A `tchar` of RFC 9110 §5.6.2: the bytes of a token (field names, extension names).
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Bytes of a field value or a quoted pair: visible ASCII, space, tab. No control bytes, and
/// no `obs-text` (0x80–0xFF), which no sender may generate (RFC 9110 §5.5).
fn is_field_byte(byte: u8) -> bool {
    matches!(byte, b'\t' | b' '..=b'~')
}

/// Finds where a chunked body ends (RFC 9112 §7.1), fed the bytes as they come, and checks
/// every byte of the framing against the grammar: sizes, chunk extensions (token names,
/// token or quoted-string values) and trailer fields (token names, visible values). What it
/// passes, any HTTP/1.1 parser downstream frames the same way.
#[derive(Debug, Default)]
pub struct ChunkedScanner {
    /// Where in the grammar the next byte falls.
    state: ChunkState,
    /// The chunk size read so far.
    size: u64,
    /// Hex digits of the size line read so far (an empty size line is not chunked coding).
    digits: u32,
    /// Trailer fields read so far.
    trailers: u32,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Hex digits of a chunk size.
    #[default]
    Size,
    /// Whitespace after the size, before `;`.
    SizeSpace,
    /// After `;`: whitespace, then an extension name.
    ExtensionStart,
    /// An extension name.
    ExtensionName,
    /// Whitespace after a name, before `=` or `;`.
    ExtensionNameSpace,
    /// After `=`: whitespace, then a token or a quoted string.
    ExtensionValueStart,
    /// A token value.
    ExtensionToken,
    /// Inside a quoted string.
    ExtensionQuoted,
    /// After a backslash in a quoted string.
    ExtensionQuotedPair,
    /// After a value: `;`, whitespace before one, or CR.
    ExtensionEnd,
    /// Whitespace after a value, before `;`.
    ExtensionEndSpace,
    /// LF ending the size line.
    SizeLf,
    /// Chunk data, `size` bytes left.
    Data,
    /// CR after the data.
    DataCr,
    /// LF after the data.
    DataLf,
    /// Start of a trailer line, or of the final CRLF.
    TrailerStart,
    /// A trailer field's name, until `:`.
    TrailerName,
    /// A trailer field's value, until CR.
    TrailerValue,
    /// LF ending a trailer line.
    TrailerLf,
    /// LF of the final CRLF.
    FinalLf,
}

/// Hex digits a chunk size may have.
const MAX_SIZE_DIGITS: u32 = 16;

impl ChunkedScanner {
    /// Scans `bytes`: `Ok(Some(n))` when the body ends after `n` of them, `Ok(None)` when it
    /// goes on past them, `Err(())` when they are not chunked coding.
    pub fn scan(&mut self, bytes: &[u8]) -> Result<Option<usize>, ()> {
        use ChunkState::*;
        let mut index = 0;
        while index < bytes.len() {
            let byte = bytes[index];
            let space = byte == b' ' || byte == b'\t';
            self.state = match self.state {
                Size => match byte {
                    // At most 16 digits, leading zeros included (a u64's worth, as httparse
                    // reads them): a size line longer than that is refused, not relayed, so no
                    // parser after the gateway can read it differently.
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' if self.digits < MAX_SIZE_DIGITS => {
                        let digit = u64::from((byte as char).to_digit(16).ok_or(())?);
                        self.size = self.size.checked_mul(16).ok_or(())? + digit;
                        self.digits += 1;
                        Size
                    }
                    b';' if self.digits > 0 => ExtensionStart,
                    _ if space && self.digits > 0 => SizeSpace,
                    b'\r' if self.digits > 0 => SizeLf,
                    _ => return Err(()),
                },
                SizeSpace | ExtensionEndSpace => match byte {
                    b';' => ExtensionStart,
                    _ if space => self.state,
                    _ => return Err(()),
                },
                ExtensionStart => match byte {
                    _ if space => ExtensionStart,
                    _ if is_tchar(byte) => ExtensionName,
                    _ => return Err(()),
                },
                ExtensionName => match byte {
                    _ if is_tchar(byte) => ExtensionName,
                    b'=' => ExtensionValueStart,
                    b';' => ExtensionStart,
                    b'\r' => SizeLf,
                    _ if space => ExtensionNameSpace,
                    _ => return Err(()),
                },
                ExtensionNameSpace => match byte {
                    b'=' => ExtensionValueStart,
                    b';' => ExtensionStart,
                    _ if space => ExtensionNameSpace,
                    _ => return Err(()),
                },
                ExtensionValueStart => match byte {
                    b'"' => ExtensionQuoted,
                    _ if space => ExtensionValueStart,
                    _ if is_tchar(byte) => ExtensionToken,
                    _ => return Err(()),
                },
                ExtensionToken => match byte {
                    _ if is_tchar(byte) => ExtensionToken,
                    b';' => ExtensionStart,
                    b'\r' => SizeLf,
                    _ if space => ExtensionEndSpace,
                    _ => return Err(()),
                },
                ExtensionQuoted => match byte {
                    b'"' => ExtensionEnd,
                    b'\\' => ExtensionQuotedPair,
                    _ if is_field_byte(byte) => ExtensionQuoted,
                    _ => return Err(()),
                },
                ExtensionQuotedPair if is_field_byte(byte) => ExtensionQuoted,
                ExtensionQuotedPair => return Err(()),
                ExtensionEnd => match byte {
                    b';' => ExtensionStart,
                    b'\r' => SizeLf,
                    _ if space => ExtensionEndSpace,
                    _ => return Err(()),
                },
                SizeLf => {
                    expect(byte, b'\n', Data)?;
                    self.digits = 0;
                    if self.size == 0 { TrailerStart } else { Data }
                }
                Data => {
                    let take = usize::try_from(self.size)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len() - index);
                    self.size -= take as u64;
                    index += take;
                    if self.size == 0 {
                        self.state = DataCr;
                    }
                    continue;
                }
                DataCr => expect(byte, b'\r', DataLf)?,
                DataLf => expect(byte, b'\n', Size)?,
                TrailerStart => match byte {
                    b'\r' => FinalLf,
                    _ if is_tchar(byte) && self.trailers < MAX_TRAILER_FIELDS => {
                        self.trailers += 1;
                        TrailerName
                    }
                    _ => return Err(()),
                },
                TrailerName => match byte {
                    b':' => TrailerValue,
                    _ if is_tchar(byte) => TrailerName,
                    _ => return Err(()),
                },
                TrailerValue => match byte {
                    b'\r' => TrailerLf,
                    _ if is_field_byte(byte) => TrailerValue,
                    _ => return Err(()),
                },
                TrailerLf => expect(byte, b'\n', TrailerStart)?,
                FinalLf => {
                    expect(byte, b'\n', FinalLf)?;
                    return Ok(Some(index + 1));
                }
            };
            index += 1;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(pieces: &[&[u8]]) -> Result<Option<usize>, ()> {
        let mut scanner = ChunkedScanner::default();
        let mut offset = 0;
        for piece in pieces {
            if let Some(end) = scanner.scan(piece)? {
                return Ok(Some(offset + end));
            }
            offset += piece.len();
        }
        Ok(None)
    }

    #[test]
    fn a_chunked_body_ends_after_the_last_chunk_and_its_trailers() {
        let body = b"5\r\nhello\r\nA;name=value\r\n0123456789\r\n3 ; a = \"q \\\" d\" ;b;c=t\r\nxyz\r\n0\r\nX-Sum: 1\t\r\nY:\r\n\r\nNEXT";
        assert_eq!(scan_all(&[body]), Ok(Some(body.len() - 4)));
        // The same bytes fed one at a time.
        let pieces: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(scan_all(&pieces), Ok(Some(body.len() - 4)));
        assert_eq!(scan_all(&[b"0\r\n\r\n"]), Ok(Some(5)));
        assert_eq!(
            scan_all(&[b"0000000000000005\r\nhello\r\n0000000000000000\r\n\r\n"]),
            Ok(Some(45)),
            "16 digits, leading zeros included"
        );
        assert_eq!(scan_all(&[b"5\r\nhel"]), Ok(None), "not over yet");
    }

    #[test]
    fn what_is_not_chunked_coding_is_refused() {
        for (bytes, what) in [
            (&b"zz\r\n"[..], "not hex"),
            (b"\r\n", "an empty size line"),
            (b"5;a\nb\r\n", "a bare LF in an extension"),
            (b"0\r\n\n", "a bare LF ending the trailers"),
            (b"0\r\nX: 1\n\r\n", "a bare LF in a trailer"),
            (b"3\r\nabcX", "data not followed by CRLF"),
            (b"fffffffffffffffff\r\n", "size overflow"),
            (
                b"00000000000000005\r\nhello\r\n",
                "17 digits, leading zeros included",
            ),
            (b"000000000000000000000\r\n\r\n", "a last chunk of 21 zeros"),
            (b"5;a\0b\r\n", "NUL in an extension"),
            (b"5;a=\x01\r\n", "a control byte as an extension value"),
            (b"5;\xff\r\n", "obs-text as an extension name"),
            (b"5;a=\"b\x7f\"\r\n", "DEL in a quoted extension value"),
            (b"5 \r\n", "whitespace after the size without an extension"),
            (b"5;a b\r\n", "two words in an extension"),
            (b"0\r\nX: \x00\r\n\r\n", "NUL in a trailer value"),
            (b"0\r\nX: \xff\r\n\r\n", "obs-text in a trailer value"),
            (b"0\r\nX : 1\r\n\r\n", "whitespace before a trailer's colon"),
            (b"0\r\n: 1\r\n\r\n", "a trailer without a name"),
            (b"0\r\nX\x01: 1\r\n\r\n", "a control byte in a trailer name"),
            (b"0\r\nX: 1\rY: 2\r\n\r\n", "a bare CR in a trailer"),
        ] {
            assert_eq!(scan_all(&[bytes]), Err(()), "{what}");
        }
        let trailers = |count: usize| format!("0\r\n{}\r\n", "X: 1\r\n".repeat(count));
        let most = MAX_TRAILER_FIELDS as usize;
        assert!(scan_all(&[trailers(most).as_bytes()]).is_ok_and(|end| end.is_some()));
        assert_eq!(
            scan_all(&[trailers(most + 1).as_bytes()]),
            Err(()),
            "more trailer fields than a parser downstream takes"
        );
    }
}
