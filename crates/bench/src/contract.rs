//! Which publish/stream contract a system under test speaks.

use crate::nchan;
use crate::sse::parse_int;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    /// Herald's API, which the Node.js baseline implements too: the topic in
    /// the body of `POST /v1/events`, envelopes with `seq`, `id:` = `seq`,
    /// one global position to resume every topic from.
    Herald,
    /// nginx + Nchan as `scripts/bench` configures it (see [`nchan`]).
    Nchan,
}

impl Contract {
    /// A number that orders events' `id:`s as the system does.
    pub fn event_key(self, id: &[u8]) -> Option<i64> {
        match self {
            Contract::Herald => parse_int(id),
            Contract::Nchan => nchan::event_key(id),
        }
    }

    /// Whether the envelope must carry `seq` equal to the `id:`.
    pub fn has_seq(self) -> bool {
        self == Contract::Herald
    }
}
