//! Reads a queue empty, so a test can assert exactly which messages were sent.

use std::time::Duration;

use cosell::queue::Queue;

/// Every visible message body, each received and acked.
pub async fn drain(queue: &dyn Queue) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let got = queue
            .receive(10, Duration::from_secs(60), Duration::ZERO)
            .await
            .expect("receive");
        if got.is_empty() {
            return bodies;
        }
        for m in got {
            queue.ack(&m.receipt).await.expect("ack");
            bodies.push(m.body);
        }
    }
}
