//! Our response to the peer's last request, kept to answer that request's retransmissions
//! (RFC 7296 2.1) without processing it twice.

/// The last response we sent, and what it answered.
#[derive(Default)]
pub(crate) struct ResponseCache {
    last: Option<Cached>,
}

struct Cached {
    msg_id: u32,
    exchange: u8,
    /// The datagrams of the response: one, or its fragments.
    response: Vec<Vec<u8>>,
}

impl ResponseCache {
    pub fn store(&mut self, msg_id: u32, exchange: u8, mut response: Vec<Vec<u8>>) {
        // Kept until the peer's next request, on every SA: no spare capacity.
        response.shrink_to_fit();
        for d in &mut response {
            d.shrink_to_fit();
        }
        self.last = Some(Cached {
            msg_id,
            exchange,
            response,
        });
    }

    /// The cached response, if `(msg_id, exchange)` is the request it answers. The caller
    /// must have verified the request first: this is never a reason to answer by itself.
    pub fn answer_to(&self, msg_id: u32, exchange: u8) -> Option<&[Vec<u8>]> {
        self.last
            .as_ref()
            .filter(|c| c.msg_id == msg_id && c.exchange == exchange)
            .map(|c| c.response.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_only_the_request_it_belongs_to() {
        let mut c = ResponseCache::default();
        assert!(c.answer_to(0, 34).is_none());
        c.store(3, 37, vec![vec![1, 2, 3], vec![4]]);
        assert_eq!(c.answer_to(3, 37), Some(&[vec![1u8, 2, 3], vec![4]][..]));
        assert!(c.answer_to(3, 35).is_none(), "same ID, other exchange");
        assert!(c.answer_to(2, 37).is_none());
    }
}
