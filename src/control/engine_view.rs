//! The IKE engine's typed status as the status document shows it: SPIs as fixed-width hex,
//! algorithms by their strongSwan names, selectors as text, failures as kind + message.
//! Traffic counters, identities and BGP are filled in by the daemon.

use super::status::{
    ChildSaStatus, ConnectionStatus, EspEncap, FragmentationReport, IkeSaStatus, InFlightReport,
    LastErrorReport,
};
use crate::ike::{self, Failure};

/// The IKE SA; `local_id`/`remote_id` come from the configuration.
pub fn ike_sa(
    i: &ike::IkeSaStatus,
    local_id: Option<String>,
    remote_id: Option<String>,
) -> IkeSaStatus {
    IkeSaStatus {
        spi_i: format!("{:016x}", i.spi_i),
        spi_r: format!("{:016x}", i.spi_r),
        local: i.local,
        remote: i.remote,
        encr: i.algs.encr.name().into(),
        integ: i.algs.integ.map(|a| a.name().into()),
        prf: i.algs.prf.name().into(),
        dh: i.algs.dh.name().into(),
        nat_detected: i.nat_detected,
        established_secs: i.established_secs,
        rekey_in_secs: i.rekey_in_secs.unwrap_or(0),
        initiator: i.initiator,
        local_id,
        remote_id,
        fragmentation: FragmentationReport {
            negotiated: i.fragments.negotiated,
            fragments_sent: i.fragments.sent,
            fragments_received: i.fragments.received,
        },
    }
}

/// A CHILD SA, with its traffic counters at zero.
pub fn child_sa(c: &ike::ChildStatus) -> ChildSaStatus {
    ChildSaStatus {
        name: c.name.clone(),
        state: c.state,
        spi_in: format!("{:08x}", c.spi_in),
        spi_out: format!("{:08x}", c.spi_out),
        encr: c.algs.encr.name().into(),
        integ: c.algs.integ.map(|a| a.name().into()),
        encap: if c.udp_encap {
            EspEncap::Udp
        } else {
            EspEncap::None
        },
        bytes_in: 0,
        bytes_out: 0,
        packets_in: 0,
        packets_out: 0,
        replay_drops: 0,
        auth_failures: 0,
        local_ts: c.local_ts.iter().map(|t| t.to_string()).collect(),
        remote_ts: c.remote_ts.iter().map(|t| t.to_string()).collect(),
        dh: c.algs.dh.map(|d| d.name().into()),
        esn: c.algs.esn,
        established_secs: c.installed_secs,
        rekey_in_secs: c.rekey_in_secs.unwrap_or(0),
    }
}

/// A short machine-readable name for the kind of failure.
pub fn failure_kind(f: &Failure) -> &'static str {
    match f {
        Failure::PeerNotResponding { .. } => "peer_not_responding",
        Failure::AuthFailed(_) => "authentication_failed",
        Failure::NoProposalChosen(_) => "no_proposal_chosen",
        Failure::TsUnacceptable { .. } => "ts_unacceptable",
        Failure::PeerError { .. } => "peer_error",
        Failure::Protocol { .. } => "protocol_error",
        Failure::Crypto { .. } => "key_exchange_failed",
    }
}

/// The connection without counters, identities or BGP; its children without counters.
pub fn connection(e: &ike::ConnStatus) -> ConnectionStatus {
    ConnectionStatus {
        state: e.state,
        ike: e.ike.as_ref().map(|i| ike_sa(i, None, None)),
        children: e.children.iter().map(child_sa).collect(),
        in_flight: e.in_flight.as_ref().map(|p| InFlightReport {
            exchange: p.exchange.name().into(),
            retransmits: p.retransmits,
            next_retransmit_secs: p.next_retransmit_in.as_secs(),
        }),
        next_attempt_secs: e.next_attempt_in.map(|d| d.as_secs()),
        last_error: e.last_error.as_ref().map(|l| LastErrorReport {
            kind: failure_kind(&l.failure).into(),
            message: l.failure.to_string(),
            secs_ago: l.ago.as_secs(),
        }),
        ..ConnectionStatus::down(e.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{DhGroup, EncrAlg, IntegAlg, PrfAlg};
    use crate::ike::{ExchangeKind, IkeAlgs, InFlightStatus, LastError};
    use std::time::Duration;

    #[test]
    fn spis_are_fixed_width_hex_and_failures_typed() {
        let e = ike::ConnStatus {
            name: "azure".into(),
            state: ike::ConnState::Connecting,
            ike: Some(ike::IkeSaStatus {
                spi_i: 0x3f1c,
                spi_r: 0,
                local: "192.0.2.1:500".parse().unwrap(),
                remote: "192.0.2.2:500".parse().unwrap(),
                algs: IkeAlgs {
                    encr: EncrAlg::AesCbc256,
                    integ: Some(IntegAlg::HmacSha1_96),
                    prf: PrfAlg::HmacSha1,
                    dh: DhGroup::Modp1024,
                },
                nat_detected: false,
                established_secs: 0,
                rekey_in_secs: None,
                initiator: true,
                fragments: Default::default(),
            }),
            children: vec![],
            in_flight: Some(InFlightStatus {
                exchange: ExchangeKind::IkeAuth,
                msg_id: 1,
                retransmits: 2,
                next_retransmit_in: Duration::from_millis(7200),
            }),
            next_attempt_in: None,
            last_error: Some(LastError {
                failure: Failure::PeerNotResponding {
                    peer: "192.0.2.2:500".parse().unwrap(),
                    exchange: ExchangeKind::IkeSaInit,
                    retransmits: 5,
                },
                ago: Duration::from_secs(40),
            }),
        };
        let c = connection(&e);
        assert_eq!(c.state, ike::ConnState::Connecting);
        let ike = c.ike.as_ref().unwrap();
        assert_eq!(ike.spi_i, "0000000000003f1c");
        assert_eq!(ike.spi_r, "0000000000000000");
        assert_eq!(ike.encr, "AES_CBC_256");
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["in_flight"]["exchange"], "IKE_AUTH");
        assert_eq!(json["in_flight"]["retransmits"], 2);
        assert_eq!(json["in_flight"]["next_retransmit_secs"], 7);
        assert_eq!(json["last_error"]["kind"], "peer_not_responding");
        assert_eq!(json["last_error"]["secs_ago"], 40);
        assert!(json["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("5 retransmits of IKE_SA_INIT"));
        assert!(json.get("next_attempt_secs").is_none());
    }
}
