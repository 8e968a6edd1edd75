//! The DATA phase: finding the end of a message and decoding its content.
//!
//! Framing is deliberately strict to defeat SMTP smuggling: only `CRLF . CRLF` ends a
//! message. A bare LF or bare CR is content, never a line terminator, so `\n.\n`,
//! `\r.\r`, `\n.\r\n` and friends cannot end the message early and let a following
//! "message" be read as commands. Only once the real end is found is the content
//! decoded: dot-stuffing is undone (at real CRLF line starts) and bare CR / LF are
//! normalised to CRLF. [`DataReader`] keeps at most the size limit in memory; a larger
//! message is still read to its end (so the session stays in sync) and then refused.

/// The terminator; the reader starts as if `\r\n` (the end of the DATA command line)
/// had just been seen, so `.\r\n` right away ends an empty message.
const END: &[u8; 5] = b"\r\n.\r\n";

/// Incremental reader of one message body.
#[derive(Debug)]
pub struct DataReader {
    /// How many bytes of [`END`] the input has matched so far.
    matched: usize,
    /// Raw bytes received, kept up to `limit + 3` (room for the final `.\r\n`).
    raw: Vec<u8>,
    /// All raw bytes received, kept or not.
    received: u64,
    limit: u64,
    done: bool,
}

/// Why a finished message cannot be delivered.
#[derive(Debug, PartialEq, Eq)]
pub struct TooBig;

impl DataReader {
    pub fn new(limit: u64) -> DataReader {
        DataReader {
            matched: 2,
            raw: Vec::new(),
            received: 0,
            limit,
            done: false,
        }
    }

    /// Feeds received bytes; returns how many were part of the message (the rest,
    /// after the terminator, are the next commands).
    pub fn feed(&mut self, input: &[u8]) -> usize {
        let taken = self.scan(input);
        let room = (self.limit + 3).saturating_sub(self.raw.len() as u64);
        let keep = taken.min(usize::try_from(room).unwrap_or(usize::MAX));
        self.raw.extend_from_slice(&input[..keep]);
        self.received += taken as u64;
        taken
    }

    /// True once `CRLF . CRLF` has been read.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The decoded message, or `TooBig` when its content exceeded the limit.
    pub fn finish(mut self) -> Result<Vec<u8>, TooBig> {
        let content_len = self.received.saturating_sub(3);
        if content_len > self.limit {
            return Err(TooBig);
        }
        // content_len <= limit, so everything received is in `raw`.
        self.raw.truncate(content_len as usize);
        Ok(decode(&self.raw))
    }

    /// Advances the terminator match over `input`; returns the bytes up to and
    /// including the terminator, or all of `input` when it has not ended.
    fn scan(&mut self, input: &[u8]) -> usize {
        if self.done {
            return 0;
        }
        for (i, &byte) in input.iter().enumerate() {
            self.matched = match byte {
                b if b == END[self.matched] => self.matched + 1,
                b'\r' => 1,
                _ => 0,
            };
            if self.matched == END.len() {
                self.done = true;
                return i + 1;
            }
        }
        input.len()
    }
}

/// Undoes dot-stuffing at the start of every CRLF line and turns bare CR or LF into
/// CRLF, so the stored message has one line ending throughout.
pub fn decode(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut line_start = true;
    let mut i = 0;
    while i < raw.len() {
        let byte = raw[i];
        i += 1;
        if line_start && byte == b'.' {
            line_start = false;
            continue;
        }
        line_start = false;
        match byte {
            b'\r' if raw.get(i) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 1;
                line_start = true;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            _ => out.push(byte),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in one piece; returns (bytes consumed, decoded message).
    fn read(input: &[u8], limit: u64) -> (usize, Option<Result<Vec<u8>, TooBig>>) {
        let mut reader = DataReader::new(limit);
        let used = reader.feed(input);
        let done = reader.is_done();
        (used, done.then(|| reader.finish()))
    }

    #[test]
    fn only_crlf_dot_crlf_ends_the_message() {
        for fake in [
            &b"\n.\n"[..],
            b"\r.\r",
            b"\n.\r\n",
            b"\r.\r\n",
            b"\r\n\x00.\r\n",
            b"\r\n.\n",
            b"\r\n.\r",
            b"\r\n .\r\n",
        ] {
            let mut body = b"Subject: x\r\n\r\nhello".to_vec();
            body.extend_from_slice(fake);
            body.extend_from_slice(b"MAIL FROM:<evil@example.org>\r\n");
            let (used, result) = read(&body, 1000);
            assert_eq!(used, body.len(), "{fake:?} ended DATA");
            assert!(result.is_none(), "{fake:?} ended DATA");
        }
    }

    #[test]
    fn message_ends_at_first_real_terminator_and_rest_is_left() {
        let input = b"a\r\n.\r\nQUIT\r\n";
        let (used, result) = read(input, 1000);
        assert_eq!(&input[used..], b"QUIT\r\n");
        assert_eq!(result, Some(Ok(b"a\r\n".to_vec())));
    }

    #[test]
    fn empty_message_is_a_lone_dot() {
        assert_eq!(read(b".\r\n", 10), (3, Some(Ok(Vec::new()))));
    }

    #[test]
    fn terminator_split_across_reads_is_found() {
        let mut reader = DataReader::new(100);
        for piece in [&b"hi\r"[..], b"\n", b".", b"\r", b"\nNOOP"] {
            let used = reader.feed(piece);
            if reader.is_done() {
                assert_eq!(&piece[used..], b"NOOP");
            }
        }
        assert_eq!(reader.finish(), Ok(b"hi\r\n".to_vec()));
    }

    #[test]
    fn dot_stuffing_is_undone_only_at_line_starts() {
        let raw = b"..leading\r\n.\tx\r\na.b\r\n...\r\n";
        assert_eq!(decode(raw), b".leading\r\n\tx\r\na.b\r\n..\r\n".to_vec());
    }

    #[test]
    fn bare_line_endings_become_crlf() {
        assert_eq!(
            decode(b"a\nb\rc\r\nd\r\r\n"),
            b"a\r\nb\r\nc\r\nd\r\n\r\n".to_vec()
        );
        // A bare-LF "line" starting with a dot is content, not stuffed.
        assert_eq!(decode(b"x\n.\nMAIL\r\n"), b"x\r\n.\r\nMAIL\r\n".to_vec());
    }

    #[test]
    fn oversize_message_is_read_to_its_end_with_bounded_memory() {
        let mut reader = DataReader::new(10);
        for _ in 0..1000 {
            assert_eq!(reader.feed(b"0123456789\r\n"), 12);
        }
        assert!(reader.raw.len() <= 13);
        let used = reader.feed(b".\r\nQUIT\r\n");
        assert_eq!(used, 3);
        assert_eq!(reader.feed(b"more"), 0, "nothing is read after the end");
        assert_eq!(reader.finish(), Err(TooBig));
    }

    #[test]
    fn message_of_exactly_the_limit_is_accepted() {
        let (_, result) = read(b"12345678\r\n.\r\n", 10);
        assert_eq!(result, Some(Ok(b"12345678\r\n".to_vec())));
        let (_, result) = read(b"123456789\r\n.\r\n", 10);
        assert_eq!(result, Some(Err(TooBig)));
    }
}
