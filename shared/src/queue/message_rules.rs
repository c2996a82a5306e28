//! What each kind of queue accepts in an outgoing message, checked the same way by every
//! adapter before anything is sent (so SQLite refuses what SQS would).

use super::{OutMessage, QueueError, QueueKind, Unsupported, MAX_ID_LEN};

pub(crate) fn check(kind: QueueKind, m: &OutMessage) -> Result<(), QueueError> {
    match kind {
        QueueKind::Fifo => {
            if !m.delay.is_zero() {
                return Err(Unsupported::DelayOnFifo.into());
            }
            if m.group.is_none() {
                return Err(Unsupported::NoGroupOnFifo.into());
            }
        }
        QueueKind::Standard => {
            if m.dedup_id.is_some() {
                return Err(Unsupported::DedupOnStandard.into());
            }
        }
    }
    if let Some(g) = &m.group {
        check_id("group id", g)?;
    }
    if let Some(d) = &m.dedup_id {
        check_id("de-duplication id", d)?;
    }
    Ok(())
}

/// SQS: 1 to 128 characters, alphanumerics and ASCII punctuation.
fn check_id(what: &str, id: &str) -> Result<(), QueueError> {
    let printable = id.bytes().all(|b| b.is_ascii_graphic());
    if id.is_empty() || id.len() > MAX_ID_LEN || !printable {
        return Err(QueueError::Invalid(format!(
            "{what} must be 1 to {MAX_ID_LEN} printable ASCII characters without spaces"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn fifo_refuses_delays_and_needs_a_group() {
        let m = OutMessage::new("x")
            .group("g")
            .delay(Duration::from_secs(1));
        assert!(matches!(
            check(QueueKind::Fifo, &m),
            Err(QueueError::Unsupported(Unsupported::DelayOnFifo))
        ));
        assert!(matches!(
            check(QueueKind::Fifo, &OutMessage::new("x")),
            Err(QueueError::Unsupported(Unsupported::NoGroupOnFifo))
        ));
        assert!(check(
            QueueKind::Fifo,
            &OutMessage::new("x").group("g").dedup_id("d")
        )
        .is_ok());
    }

    #[test]
    fn standard_takes_groups_but_no_dedup_ids() {
        assert!(check(QueueKind::Standard, &OutMessage::new("x").group("g")).is_ok());
        assert!(matches!(
            check(QueueKind::Standard, &OutMessage::new("x").dedup_id("d")),
            Err(QueueError::Unsupported(Unsupported::DedupOnStandard))
        ));
    }

    #[test]
    fn ids_are_short_printable_ascii() {
        for bad in ["", "has space", "é", &"x".repeat(129)] {
            let m = OutMessage::new("x").group(bad);
            assert!(
                matches!(check(QueueKind::Fifo, &m), Err(QueueError::Invalid(_))),
                "{bad:?}"
            );
        }
        let m = OutMessage::new("x")
            .group("x".repeat(128))
            .dedup_id("a-b_c:1");
        assert!(check(QueueKind::Fifo, &m).is_ok());
    }
}
