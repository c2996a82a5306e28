//! Conflicts, every way round: a CRM edit and a Partner Center edit (of the same field or
//! of different ones), the reconcile a Partner Center webhook sends and the one the CRM
//! poller sends (each possibly twice, which also covers the echo of our own writes) and the
//! seller closing the deal, in every order. Whatever the order, once the pair is at rest
//! the two sides must agree (except a Partner Center edit left pending on a won deal), and a
//! field changed on both sides must hold its winner's value.

use cosell::engine::{reconcile_pair, Origin, PairOutcome, SyncError, SyncMessage};
use cosell::mapping::strip_checkmark;
use cosell::partner_center::PatchOp;
use cosell_tests::harness::Harness;
use serde_json::{json, Map, Value};

const ACCEPT: i64 = 100_000_000;

/// The reconcile a Partner Center webhook asks for.
async fn from_referral(h: &Harness, rid: &str) -> Result<PairOutcome, SyncError> {
    let m = SyncMessage::for_referral(h.engine.store.as_ref(), rid, Origin::Referral, None)
        .await
        .expect("key the message");
    reconcile_pair(&h.engine, &m).await
}

/// The reconcile the CRM poller asks for.
async fn from_opportunity(h: &Harness, opp: &str) -> Result<PairOutcome, SyncError> {
    reconcile_pair(&h.engine, &SyncMessage::for_opportunity(opp, None)).await
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().expect("object literal").clone()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Name,
    Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The seller edits the field in the CRM.
    Crm,
    /// Microsoft edits the field in Partner Center.
    Pc,
    /// The seller wins the deal in the CRM.
    Win,
    /// A reconcile from Partner Center's side (webhook).
    In,
    /// A reconcile from the CRM's side (poller).
    Out,
}

struct Pair {
    rid: String,
    opp: String,
}

async fn settle(h: &Harness, p: &Pair) -> Result<(), String> {
    for _ in 0..8 {
        let o = from_opportunity(h, &p.opp)
            .await
            .map_err(|e| format!("from the CRM: {e}"))?;
        let i = from_referral(h, &p.rid)
            .await
            .map_err(|e| format!("from Partner Center: {e}"))?;
        if matches!(
            o,
            PairOutcome::Unchanged { .. } | PairOutcome::Skipped { .. }
        ) && matches!(i, PairOutcome::Unchanged { .. })
        {
            return Ok(());
        }
    }
    Err("the pair did not come to rest".into())
}

/// A referral from Microsoft, synced to the CRM and accepted there, with both sides at rest.
async fn pair(h: &Harness, n: usize) -> Pair {
    let created =
        h.pc.create_incoming_referral(&format!("Deal {n}"), "Contoso Ltd");
    let rid = created["id"].as_str().unwrap().to_string();
    let opp = match from_referral(h, &rid).await.unwrap() {
        PairOutcome::OpportunityCreated { opportunity_id, .. } => opportunity_id,
        other => panic!("{other:?}"),
    };
    let p = Pair { rid, opp };
    let mut change = Map::new();
    change.insert(h.engine.columns.decision.clone(), json!(ACCEPT));
    h.dv.user_update("opportunities", &p.opp, change).unwrap();
    h.dv.user_update(
        "opportunities",
        &p.opp,
        obj(json!({"estimatedvalue": 1000.0})),
    )
    .unwrap();
    settle(h, &p).await.unwrap();
    p
}

fn crm_value(field: Field, n: usize) -> Value {
    match field {
        Field::Name => json!(format!("CRM rename {n}")),
        Field::Value => json!(10_000.0 + n as f64),
    }
}

fn pc_value(field: Field, n: usize) -> Value {
    match field {
        Field::Name => json!(format!("PC rename {n}")),
        Field::Value => json!(500_000.0 + n as f64),
    }
}

/// Runs one step; false when it did not apply (an edit of a closed record).
async fn step(h: &Harness, p: &Pair, s: Step, x: Field, y: Field, n: usize) -> bool {
    match s {
        // Like the people in the simulation: sellers edit open deals only, Microsoft open
        // referrals only.
        Step::Crm if h.dv.row("opportunities", &p.opp).unwrap()["statecode"] != 0 => return false,
        Step::Pc if h.pc.referral(&p.rid).unwrap()["status"] == "Closed" => return false,
        Step::Crm => {
            let column = match x {
                Field::Name => "name",
                Field::Value => "estimatedvalue",
            };
            let mut change = Map::new();
            change.insert(column.into(), crm_value(x, n));
            h.dv.user_update("opportunities", &p.opp, change).unwrap();
        }
        Step::Pc => {
            let path = match y {
                Field::Name => "/name",
                Field::Value => "/details/dealValue",
            };
            let current = h.engine.pc.get_referral(&p.rid).await.unwrap();
            h.engine
                .pc
                .update_referral(
                    &p.rid,
                    current.e_tag.as_deref().unwrap(),
                    &[PatchOp::replace(path, pc_value(y, n))],
                )
                .await
                .unwrap();
        }
        Step::Win => {
            h.dv.user_update(
                "opportunities",
                &p.opp,
                obj(json!({"statecode": 1, "statuscode": 3})),
            )
            .unwrap();
        }
        Step::In => {
            from_referral(h, &p.rid).await.unwrap();
        }
        Step::Out => {
            from_opportunity(h, &p.opp).await.unwrap();
        }
    }
    true
}

/// Every order of one CRM edit, one Partner Center edit, up to two syncs each way and
/// (with `win`) the seller winning the deal, at most `max_len` steps.
fn sequences(win: bool, max_len: usize) -> Vec<Vec<Step>> {
    let mut out = Vec::new();
    for wins in 0..=usize::from(win) {
        for ins in 0..=2 {
            for outs in 0..=2 {
                let mut pool = vec![Step::Crm, Step::Pc];
                pool.extend(std::iter::repeat_n(Step::Win, wins));
                pool.extend(std::iter::repeat_n(Step::In, ins));
                pool.extend(std::iter::repeat_n(Step::Out, outs));
                if pool.len() <= max_len {
                    permute(&mut pool, 0, &mut out);
                }
            }
        }
    }
    out.sort_by_key(|s| format!("{s:?}"));
    out.dedup();
    out
}

fn permute(pool: &mut Vec<Step>, k: usize, out: &mut Vec<Vec<Step>>) {
    if k == pool.len() {
        out.push(pool.clone());
        return;
    }
    for i in k..pool.len() {
        pool.swap(k, i);
        permute(pool, k + 1, out);
        pool.swap(k, i);
    }
}

async fn check(
    h: &Harness,
    p: &Pair,
    x: Field,
    y: Field,
    seq: &[Step],
    n: usize,
) -> Result<(), String> {
    settle(h, p).await?;
    let row = h.dv.row("opportunities", &p.opp).unwrap();
    let referral = h.pc.referral(&p.rid).unwrap();
    let crm_name = strip_checkmark(row["name"].as_str().unwrap_or("")).to_string();
    let pc_name = referral["name"].as_str().unwrap_or("").to_string();
    let crm_deal = row["estimatedvalue"].as_f64().unwrap_or(f64::NAN);
    let pc_deal = referral["details"]["dealValue"]
        .as_f64()
        .unwrap_or(f64::NAN);
    let mut problems = Vec::new();
    // A won deal is read-only in the CRM: Partner Center's edit of `y` may stay pending there
    // (kept in Partner Center, never overwritten by the CRM's older value). Every other
    // field must agree.
    let won = seq.contains(&Step::Win);
    let pending = |field: Field| {
        won && field == y
            && seq.contains(&Step::Pc)
            && match field {
                Field::Name => pc_name == pc_value(y, n).as_str().unwrap(),
                Field::Value => (pc_deal - pc_value(y, n).as_f64().unwrap()).abs() < 0.005,
            }
    };
    if crm_name != pc_name && !pending(Field::Name) {
        problems.push(format!(
            "name: CRM {crm_name:?}, Partner Center {pc_name:?}"
        ));
    }
    if (crm_deal - pc_deal).abs() >= 0.005 && !pending(Field::Value) {
        problems.push(format!(
            "deal value: CRM {crm_deal}, Partner Center {pc_deal}"
        ));
    }
    // Both edits made before either reconcile ran: a real conflict on the same field. A deal
    // the seller closed keeps the CRM's values (its columns are read-only and are not reopened
    // for an edit), so there agreeing is all that can be asked.
    let first_sync = seq
        .iter()
        .position(|s| matches!(s, Step::In | Step::Out))
        .unwrap_or(seq.len());
    let both_before =
        seq[..first_sync].contains(&Step::Crm) && seq[..first_sync].contains(&Step::Pc);
    if problems.is_empty() && x == y && both_before && !seq.contains(&Step::Win) {
        match x {
            Field::Name if pc_name != pc_value(x, n) => {
                problems.push(format!("name: Partner Center wins, but it is {pc_name:?}"))
            }
            Field::Value if (pc_deal - crm_value(x, n).as_f64().unwrap()).abs() >= 0.005 => {
                problems.push(format!("deal value: the CRM wins, but it is {pc_deal}"))
            }
            _ => {}
        }
    }
    // Different fields: the merge keeps both edits, whatever the order.
    if problems.is_empty() && x != y && !seq.contains(&Step::Win) {
        let crm_kept = match x {
            Field::Name => crm_name == crm_value(x, n).as_str().unwrap(),
            Field::Value => (crm_deal - crm_value(x, n).as_f64().unwrap()).abs() < 0.005,
        };
        let pc_kept = match y {
            Field::Name => pc_name == pc_value(y, n).as_str().unwrap(),
            Field::Value => (pc_deal - pc_value(y, n).as_f64().unwrap()).abs() < 0.005,
        };
        if seq.contains(&Step::Crm) && !crm_kept {
            problems.push(format!("the CRM's edit of {x:?} was lost"));
        }
        if seq.contains(&Step::Pc) && !pc_kept {
            problems.push(format!("Partner Center's edit of {y:?} was lost"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

async fn run_all(win: bool, max_len: usize) {
    let h = Harness::start().await;
    let mut failures = Vec::new();
    let mut n = 0;
    let seqs = sequences(win, max_len);
    for x in [Field::Name, Field::Value] {
        for y in [Field::Name, Field::Value] {
            for seq in &seqs {
                n += 1;
                let p = pair(&h, n).await;
                let mut applied = Vec::new();
                for s in seq {
                    if step(&h, &p, *s, x, y, n).await {
                        applied.push(*s);
                    }
                }
                if let Err(e) = check(&h, &p, x, y, &applied, n).await {
                    failures.push(format!("CRM edits {x:?}, PC edits {y:?}, {seq:?}: {e}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} interleavings end apart:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn both_sides_agree_after_any_interleaving_of_edits_and_syncs() {
    run_all(false, 6).await;
}

#[tokio::test]
async fn both_sides_agree_when_the_seller_wins_the_deal_meanwhile() {
    run_all(true, 5).await;
}

/// The seller renames the deal while Microsoft changes only its value: the poller's
/// reconcile merges field by field, so the rename reaches Partner Center and the value the
/// CRM (neither is taken for the other side undoing it).
#[tokio::test]
async fn a_crm_rename_and_a_pc_value_edit_both_survive_from_the_crm_side() {
    let h = Harness::start().await;
    let p = pair(&h, 1).await;
    for s in [Step::Crm, Step::Pc, Step::Out] {
        assert!(step(&h, &p, s, Field::Name, Field::Value, 1).await);
    }
    check(&h, &p, Field::Name, Field::Value, &[Step::Crm, Step::Pc], 1)
        .await
        .unwrap();
}

/// The same edits with the webhook's reconcile first: the same merge from the other side.
#[tokio::test]
async fn a_crm_rename_and_a_pc_value_edit_both_survive_from_the_referral_side() {
    let h = Harness::start().await;
    let p = pair(&h, 1).await;
    for s in [Step::Crm, Step::Pc, Step::In] {
        assert!(step(&h, &p, s, Field::Name, Field::Value, 1).await);
    }
    check(&h, &p, Field::Name, Field::Value, &[Step::Crm, Step::Pc], 1)
        .await
        .unwrap();
}

/// A deal the seller won while both sides had changes: the referral is closed as won, the
/// seller's rename reaches it, and Microsoft's value edit stays pending in Partner Center.
#[tokio::test]
async fn a_deal_won_in_the_crm_meanwhile_keeps_the_close_and_the_pending_edit() {
    let h = Harness::start().await;
    let p = pair(&h, 1).await;
    for s in [Step::Crm, Step::Pc, Step::Win, Step::Out] {
        assert!(step(&h, &p, s, Field::Name, Field::Value, 1).await);
    }
    check(
        &h,
        &p,
        Field::Name,
        Field::Value,
        &[Step::Crm, Step::Pc, Step::Win],
        1,
    )
    .await
    .unwrap();
    let referral = h.pc.referral(&p.rid).unwrap();
    assert_eq!(
        (referral["status"].clone(), referral["substatus"].clone()),
        (json!("Closed"), json!("Won"))
    );
    assert_eq!(
        h.dv.row("opportunities", &p.opp).unwrap()["statecode"],
        json!(1)
    );
}
