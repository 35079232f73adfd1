//! The node's UDP socket as quinn sees it: quinn's own, except that a batch of datagrams
//! larger than the kernel takes in one segmentation-offload send is sent as several.
//!
//! quinn batches up to 10 datagrams of the path's MTU into one `sendmsg` with `UDP_SEGMENT`,
//! but Linux refuses a batch of more than 64 KiB (`EMSGSIZE`), and quinn-udp drops a refused
//! batch without a word. With 1,452-byte datagrams a batch never gets there; once MTU
//! discovery finds a larger path (loopback, a jumbo-frame LAN) every batch of two or more did,
//! and the losses made quinn judge the path a black hole and fall back to 1,200 bytes.
//! [`split`] cuts a batch at datagram boundaries into sends the kernel takes.
//!
//! A receive buffer needs no more than 64 KiB per datagram either: the kernel coalesces
//! received datagrams (GRO) up to 64 KiB in all, so [`GsoSplit::max_receive_segments`] asks
//! quinn for no larger buffers than that, however large the datagrams may be.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};

/// The most bytes of UDP payload one send may carry: 65,535 bytes of IPv4 packet less its 20
/// bytes of IP header and 8 of UDP header (IPv6 allows 20 more; this holds for both).
pub const MAX_SEND_BYTES: usize = 65_507;

/// The most bytes the kernel delivers in one coalesced receive.
const MAX_RECEIVE_BYTES: usize = 65_535;

/// The byte ranges of `len` bytes of datagrams of `segment_size` bytes each (the last may
/// be shorter) that make sends of at most [`MAX_SEND_BYTES`], each a whole number of
/// datagrams. A datagram larger than that on its own is one range (the kernel refuses it,
/// as it would anyway).
pub fn split(len: usize, segment_size: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let segment_size = segment_size.max(1);
    let step = (MAX_SEND_BYTES / segment_size).max(1) * segment_size;
    (0..len)
        .step_by(step)
        .map(move |start| start..(start + step).min(len))
}

/// How many datagrams of `max_payload` bytes a receive buffer is sized for, when the socket
/// coalesces up to `coalesced` of them: enough for [`MAX_RECEIVE_BYTES`], no more.
fn receive_segments(coalesced: usize, max_payload: usize) -> usize {
    coalesced.clamp(1, MAX_RECEIVE_BYTES.div_ceil(max_payload.max(1)))
}

/// quinn's socket for this platform, sending batches larger than the kernel takes in pieces.
pub struct GsoSplit {
    inner: Arc<dyn AsyncUdpSocket>,
    /// The largest UDP payload the endpoint accepts (quinn's `max_udp_payload_size`).
    max_payload: usize,
}

impl GsoSplit {
    /// Wraps `inner`, an endpoint's socket that accepts UDP payloads up to `max_payload`.
    pub fn new(inner: Arc<dyn AsyncUdpSocket>, max_payload: u16) -> GsoSplit {
        GsoSplit {
            inner,
            max_payload: usize::from(max_payload).max(1),
        }
    }
}

impl fmt::Debug for GsoSplit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GsoSplit")
            .field("inner", &self.inner)
            .finish()
    }
}

impl AsyncUdpSocket for GsoSplit {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        let Some(segment_size) = transmit.segment_size else {
            return self.inner.try_send(transmit);
        };
        if transmit.contents.len() <= MAX_SEND_BYTES {
            return self.inner.try_send(transmit);
        }
        for range in split(transmit.contents.len(), segment_size) {
            let contents = &transmit.contents[range];
            // A send the socket cannot take yet fails the whole transmit, and quinn sends it
            // again when the socket is writable: the datagrams already sent arrive twice,
            // and the receiver drops the copies (QUIC numbers every packet).
            self.inner.try_send(&Transmit {
                destination: transmit.destination,
                ecn: transmit.ecn,
                contents,
                segment_size: (contents.len() > segment_size).then_some(segment_size),
                src_ip: transmit.src_ip,
            })?;
        }
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_recv(cx, bufs, meta)
    }

    fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    /// quinn sizes each receive buffer as this many datagrams of the largest payload it
    /// accepts; coalesced datagrams never total more than [`MAX_RECEIVE_BYTES`], so no more
    /// are asked for than make that.
    fn max_receive_segments(&self) -> usize {
        receive_segments(self.inner.max_receive_segments(), self.max_payload)
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_within_the_limit_is_one_send() {
        assert_eq!(split(14_520, 1_452).collect::<Vec<_>>(), vec![0..14_520]);
    }

    #[test]
    fn a_large_batch_is_cut_at_datagram_boundaries() {
        // Ten 65,000-byte datagrams, the last short: one datagram a send.
        let sends: Vec<_> = split(9 * 65_000 + 100, 65_000).collect();
        assert_eq!(sends.len(), 10);
        assert!(sends.iter().all(|r| r.start % 65_000 == 0));
        assert_eq!(sends[9], 585_000..585_100);
        // 9,000-byte datagrams: seven to a send, no send over the limit.
        let sends: Vec<_> = split(10 * 9_000, 9_000).collect();
        assert_eq!(sends, vec![0..63_000, 63_000..90_000]);
        assert!(sends.iter().all(|r| r.len() <= MAX_SEND_BYTES));
    }

    #[test]
    fn receive_buffers_hold_64_kib_of_coalesced_datagrams() {
        // quinn's buffer is segments × payload: at least 64 KiB when the socket coalesces,
        // a couple of datagrams' worth when they are large.
        let segments = receive_segments(64, 1_472);
        assert_eq!(segments, 45);
        assert!(segments * 1_472 >= MAX_RECEIVE_BYTES);
        assert_eq!(receive_segments(64, 65_000), 2);
        assert_eq!(receive_segments(1, 65_000), 1);
        assert_eq!(receive_segments(0, 1_472), 1);
    }

    #[test]
    fn a_datagram_over_the_limit_is_sent_alone() {
        assert_eq!(split(70_000, 70_000).collect::<Vec<_>>(), vec![0..70_000]);
        assert_eq!(split(0, 1_200).count(), 0);
    }
}
