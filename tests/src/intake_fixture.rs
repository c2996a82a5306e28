//! The webhook intake wired as in production (verifier from settings, embedded store and
//! FIFO sync queue) against the Partner Center stand-in's certificate, with a signer that
//! signs as the stand-in does.

use cosell::engine::intake::{handle_webhook, IntakeResponse};
use cosell::engine::wiring;
use cosell::partner_center::webhook_verify::WebhookVerifier;
use cosell::queue::Queue;
use http::HeaderMap;

use crate::harness::Harness;
use crate::webhook_signing::DeliverySigner;

pub struct IntakeFixture {
    pub h: Harness,
    pub verifier: WebhookVerifier,
    pub signer: DeliverySigner,
}

impl IntakeFixture {
    pub async fn start() -> IntakeFixture {
        let h = Harness::start().await;
        let verifier = wiring::webhook_verifier(&h.config).expect("webhook verifier");
        let signer = DeliverySigner::for_standin(&h.pc.base_url());
        IntakeFixture {
            h,
            verifier,
            signer,
        }
    }

    pub async fn post(&self, headers: &HeaderMap, body: &[u8]) -> IntakeResponse {
        handle_webhook(
            &self.verifier,
            &*self.h.store,
            &*self.h.queue,
            headers,
            body,
        )
        .await
    }

    /// Every message on the sync queue, whatever its state.
    pub async fn queued(&self) -> u64 {
        let d = self.h.queue.depth().await.expect("queue depth");
        d.visible + d.in_flight + d.delayed + d.dead
    }
}
