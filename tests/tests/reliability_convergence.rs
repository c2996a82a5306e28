//! Convergence: a seeded randomized run of creates and edits on both sides, accept/decline
//! and won/lost, with injected faults, ends with both sides in agreement: one opportunity
//! per referral, one referral per synced opportunity, fields equal under the mapping, and
//! every failure in the audit trail. CI runs a few hundred operations; set
//! COSELL_CONVERGENCE_OPS for more and COSELL_CONVERGENCE_SEED to replay a seed.

use cosell_tests::convergence::{RunConfig, Simulation};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_converge_under_faults() {
    let config = RunConfig::from_env(200);
    println!(
        "convergence seed {} (replay with COSELL_CONVERGENCE_SEED={})",
        config.seed, config.seed
    );
    let mut sim = Simulation::start(&config).await;
    sim.run(&config).await;
    sim.quiesce().await;
    sim.check().await;
    let f = &sim.figures;
    println!("{}", f.line());
    for m in f.mismatches.iter().take(40) {
        println!("  mismatch: {m}");
    }
    assert!(
        f.mismatches.is_empty(),
        "{} mismatches; replay with COSELL_CONVERGENCE_SEED={}",
        f.mismatches.len(),
        f.seed
    );
    // The run must have exercised what it claims to.
    assert!(f.operations as usize == config.operations);
    assert!(f.faults_injected > 0 && f.referrals > 0 && f.opportunities > 0);
}
