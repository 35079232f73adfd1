//! Every application close code of the node, by name: the codes a connection is closed with
//! and a blob stream is reset with. The numbers are on the wire; they never change meaning.

use quinn::VarInt;

/// Why this node closes a connection (or resets a blob stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// The conversation is over: a ping, a pairing or a restore fetch ended, or the node stops.
    Done,
    /// A pairing attempt was refused.
    Refused,
    /// The peer is not (or no longer) a member.
    Revoked,
    /// The peer broke the protocol (a malformed or unexpected message).
    ProtocolError,
    /// The peer sent blob data that does not match the blob ID.
    BadData,
    /// Both ends dialled: this connection is the duplicate that is dropped.
    Duplicate,
    /// This node is stopping (a blob stream reset mid-transfer).
    Stopping,
}

impl Close {
    /// Every close, in code order.
    pub const ALL: [Close; 7] = [
        Close::Done,
        Close::Refused,
        Close::Revoked,
        Close::ProtocolError,
        Close::BadData,
        Close::Duplicate,
        Close::Stopping,
    ];

    /// The code on the wire.
    pub fn code(self) -> VarInt {
        VarInt::from_u32(match self {
            Close::Done => 0,
            Close::Refused => 1,
            Close::Revoked => 2,
            Close::ProtocolError => 3,
            Close::BadData => 4,
            Close::Duplicate => 5,
            Close::Stopping => 6,
        })
    }

    /// The reason text sent with the code.
    pub fn reason(self) -> &'static [u8] {
        match self {
            Close::Done => b"done",
            Close::Refused => b"refused",
            Close::Revoked => b"revoked",
            Close::ProtocolError => b"protocol error",
            Close::BadData => b"bad data",
            Close::Duplicate => b"duplicate",
            Close::Stopping => b"stopping",
        }
    }

    /// Closes `connection` with this code and its reason.
    pub fn close(self, connection: &quinn::Connection) {
        connection.close(self.code(), self.reason());
    }

    /// Closes every connection of `endpoint` with this code and its reason.
    pub fn close_endpoint(self, endpoint: &quinn::Endpoint) {
        endpoint.close(self.code(), self.reason());
    }

    /// The close a code stands for, if it is one of ours.
    pub fn from_code(code: VarInt) -> Option<Close> {
        Close::ALL.into_iter().find(|c| c.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_round_trip() {
        for (i, close) in Close::ALL.into_iter().enumerate() {
            assert_eq!(close.code(), VarInt::from_u32(i as u32));
            assert_eq!(Close::from_code(close.code()), Some(close));
        }
        assert_eq!(Close::from_code(VarInt::from_u32(7)), None);
    }
}
