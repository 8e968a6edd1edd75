//! One client connection: the byte stream (plain or TLS after STARTTLS), an input buffer
//! that yields command lines, and an output buffer of queued replies.
//!
//! Replies are queued and written only when the session must wait for more input
//! (the session flushes before every [`Connection::read_more`]), which is exactly the RFC 2920 pipelining
//! rule: a client that sends a batch of commands gets its replies as one batch. The
//! input buffer is explicit so STARTTLS can throw away whatever the client sent before
//! the handshake (CVE-2011-0411) and so memory stays bounded: a command line longer
//! than the limit is discarded as it arrives.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::reply::Reply;

const READ_CHUNK: usize = 8 * 1024;

/// The transport under a session: plain until STARTTLS succeeds, TLS after.
pub enum SmtpStream<IO> {
    Plain(IO),
    Tls(Box<TlsStream<IO>>),
    /// Left behind by a failed handshake; every operation fails.
    Closed,
}

/// What the input buffer holds next.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A command line without its CRLF.
    Command(Vec<u8>),
    /// The line was longer than the limit; it has been discarded to its end.
    TooLong,
    /// The line contained a bare CR or ended in a bare LF.
    BareLineEnding,
}

pub struct Connection<IO> {
    stream: SmtpStream<IO>,
    input: Vec<u8>,
    /// Start of the unread part of `input`.
    pos: usize,
    /// A too-long line is being skipped up to its LF.
    discarding: bool,
    output: Vec<u8>,
}

impl<IO: AsyncRead + AsyncWrite + Unpin + Send> Connection<IO> {
    pub fn new(io: IO) -> Connection<IO> {
        Connection {
            stream: SmtpStream::Plain(io),
            input: Vec::with_capacity(READ_CHUNK),
            pos: 0,
            discarding: false,
            output: Vec::new(),
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.stream, SmtpStream::Tls(_))
    }

    pub fn queue(&mut self, reply: &Reply) {
        self.output.extend_from_slice(&reply.to_bytes());
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.output.is_empty() {
            self.stream.write_all(&self.output).await?;
            self.output.clear();
        }
        self.stream.flush().await
    }

    /// Reads more input (cancel-safe); `Ok(0)` means the client closed. Callers flush
    /// queued replies first.
    pub async fn read_more(&mut self) -> io::Result<usize> {
        if self.pos > 0 {
            self.input.drain(..self.pos);
            self.pos = 0;
        }
        self.input.reserve(READ_CHUNK);
        self.stream.read_buf(&mut self.input).await
    }

    /// Input received but not yet used.
    pub fn buffered(&self) -> &[u8] {
        &self.input[self.pos..]
    }

    pub fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.input.len());
    }

    /// Drops all unread input (before a TLS handshake).
    pub fn discard_input(&mut self) {
        self.input.clear();
        self.pos = 0;
        self.discarding = false;
    }

    /// The next complete command line in the buffer, if any. Lines end at LF; one
    /// that does not end in CRLF, or holds a CR elsewhere, is reported as bare.
    pub fn take_line(&mut self, max_len: usize) -> Option<Line> {
        let unread = &self.input[self.pos..];
        let Some(lf) = unread.iter().position(|&b| b == b'\n') else {
            if self.discarding || unread.len() >= max_len {
                // No LF within the limit: the line is too long whatever follows.
                self.input.clear();
                self.pos = 0;
                self.discarding = true;
            }
            return None;
        };
        let line = &unread[..lf];
        let verdict = if std::mem::take(&mut self.discarding) || lf + 1 > max_len {
            Line::TooLong
        } else {
            match line.strip_suffix(b"\r") {
                Some(text) if !text.contains(&b'\r') => Line::Command(text.to_vec()),
                _ => Line::BareLineEnding,
            }
        };
        self.pos += lf + 1;
        Some(verdict)
    }

    /// Runs the server side of a TLS handshake on the plain stream.
    pub async fn start_tls(&mut self, acceptor: &TlsAcceptor) -> io::Result<()> {
        let SmtpStream::Plain(io) = std::mem::replace(&mut self.stream, SmtpStream::Closed) else {
            return Err(io::Error::other("TLS is already active"));
        };
        let tls = acceptor.accept(io).await?;
        self.stream = SmtpStream::Tls(Box::new(tls));
        Ok(())
    }

    pub async fn close(&mut self) {
        let _ = self.stream.shutdown().await;
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection closed")
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for SmtpStream<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            SmtpStream::Plain(io) => Pin::new(io).poll_read(cx, buf),
            SmtpStream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
            SmtpStream::Closed => Poll::Ready(Err(closed())),
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for SmtpStream<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            SmtpStream::Plain(io) => Pin::new(io).poll_write(cx, buf),
            SmtpStream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
            SmtpStream::Closed => Poll::Ready(Err(closed())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            SmtpStream::Plain(io) => Pin::new(io).poll_flush(cx),
            SmtpStream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
            SmtpStream::Closed => Poll::Ready(Err(closed())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            SmtpStream::Plain(io) => Pin::new(io).poll_shutdown(cx),
            SmtpStream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
            SmtpStream::Closed => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn_with(input: &[u8]) -> Connection<tokio::io::DuplexStream> {
        let (io, _) = tokio::io::duplex(16);
        let mut conn = Connection::new(io);
        conn.input.extend_from_slice(input);
        conn
    }

    #[tokio::test]
    async fn lines_need_crlf_and_no_stray_cr() {
        let mut conn = conn_with(b"NOOP\r\nNOOP\nNO\rOP\r\nRSET\r\npartial");
        assert_eq!(conn.take_line(100), Some(Line::Command(b"NOOP".to_vec())));
        assert_eq!(conn.take_line(100), Some(Line::BareLineEnding));
        assert_eq!(conn.take_line(100), Some(Line::BareLineEnding));
        assert_eq!(conn.take_line(100), Some(Line::Command(b"RSET".to_vec())));
        assert_eq!(conn.take_line(100), None);
        assert_eq!(conn.buffered(), b"partial");
    }

    #[tokio::test]
    async fn long_line_is_discarded_across_reads() {
        let mut conn = conn_with(&[b'x'; 50]);
        assert_eq!(conn.take_line(20), None);
        assert!(
            conn.buffered().is_empty(),
            "over-long input must not be kept"
        );
        conn.input.extend_from_slice(b"yyy\r\nNOOP\r\n");
        assert_eq!(conn.take_line(20), Some(Line::TooLong));
        assert_eq!(conn.take_line(20), Some(Line::Command(b"NOOP".to_vec())));
    }

    #[tokio::test]
    async fn limit_counts_the_crlf() {
        let mut conn = conn_with(b"12345678\r\n123456789\r\n");
        assert_eq!(
            conn.take_line(10),
            Some(Line::Command(b"12345678".to_vec()))
        );
        assert_eq!(conn.take_line(10), Some(Line::TooLong));
    }
}
