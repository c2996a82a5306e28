//! Solutions as rows (`[solutions] layout = "table"`, Microsoft's co-sell layout): a
//! referral's solutions land as child rows of its opportunity, each bound to a catalogue
//! row; a seller's added and removed rows reach the referral; Partner Center's changes reach
//! the rows; our own writes come back as no change; a co-sell without rows is refused
//! before anything is sent. Engine through both stand-ins.

mod support;

use std::collections::BTreeMap;

use cosell::engine::{reconcile_pair, Origin, PairOutcome, SyncMessage};
use cosell::partner_center::PatchOp;
use cosell::store::Store;
use cosell_tests::crm_rows;
use cosell_tests::harness::Harness;
use dataverse_standin::solution_tables::{
    CATALOGUE_SET, CHILD_CATALOGUE, CHILD_OPPORTUNITY, CHILD_SET,
};
use serde_json::{json, Map, Value};
use support::drain::drain;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().expect("object literal").clone()
}

/// A harness whose mapping keeps solutions as rows (the default's table names).
async fn table_layout() -> (Harness, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mapping.toml");
    std::fs::write(
        &file,
        "extends = \"default\"\n\n[solutions]\nlayout = \"table\"\n",
    )
    .unwrap();
    let path = file.display().to_string();
    let h = Harness::start_with(&[("COSELL_MAPPING_FILE", path.as_str())]).await;
    assert!(h.engine.mapping.solutions.is_table());
    (h, dir)
}

/// A pre-populated catalogue row; returns its id.
fn catalogue(h: &Harness, solution_id: &str, name: &str) -> String {
    h.dv.user_insert(
        CATALOGUE_SET,
        obj(json!({"cosell_solutionid": solution_id, "cosell_name": name})),
    )
    .unwrap()
}

/// The opportunity's solution rows: solution id -> (row id, catalogue row id).
fn rows_of(h: &Harness, opp: &str) -> BTreeMap<String, (String, String)> {
    let details: BTreeMap<String, String> =
        h.dv.rows(CATALOGUE_SET)
            .iter()
            .map(|r| {
                (
                    r["cosell_solutiondetailid"].as_str().unwrap().to_string(),
                    r["cosell_solutionid"].as_str().unwrap().to_string(),
                )
            })
            .collect();
    h.dv.rows(CHILD_SET)
        .iter()
        .filter(|r| r[format!("_{CHILD_OPPORTUNITY}_value")] == json!(opp))
        .map(|r| {
            let detail = r[format!("_{CHILD_CATALOGUE}_value")].as_str().unwrap();
            (
                details[detail].clone(),
                (
                    r["cosell_opportunitysolutionid"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                    detail.to_string(),
                ),
            )
        })
        .collect()
}

fn ids(rows: &BTreeMap<String, (String, String)>) -> Vec<&str> {
    rows.keys().map(String::as_str).collect()
}

/// The referral's solution ids, in its order.
async fn referral_solutions(h: &Harness, rid: &str) -> Vec<Value> {
    let r = h.engine.pc.get_referral(rid).await.unwrap();
    let json = serde_json::to_value(r).unwrap();
    json.pointer("/details/requirements/solutions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// Microsoft sets the referral's solutions in Partner Center.
async fn set_solutions(h: &Harness, rid: &str, solutions: Value) {
    let current = h.engine.pc.get_referral(rid).await.unwrap();
    h.engine
        .pc
        .update_referral(
            rid,
            current.e_tag.as_deref().unwrap(),
            &[PatchOp::add(
                "/details/requirements",
                json!({"solutions": solutions}),
            )],
        )
        .await
        .unwrap();
}

async fn from_referral(h: &Harness, rid: &str) -> PairOutcome {
    let m = SyncMessage::for_referral(h.store.as_ref(), rid, Origin::Referral, None)
        .await
        .unwrap();
    reconcile_pair(&h.engine, &m).await.unwrap()
}

async fn from_opportunity(
    h: &Harness,
    opp: &str,
) -> Result<PairOutcome, cosell::engine::SyncError> {
    let modified = h.dv.row("opportunities", opp).unwrap()["modifiedon"]
        .as_str()
        .map(str::to_string);
    reconcile_pair(&h.engine, &SyncMessage::for_opportunity(opp, modified)).await
}

/// Dataverse requests other than reads and tokens.
fn dv_writes(h: &Harness) -> u64 {
    h.dv.request_counts()
        .iter()
        .filter(|(k, _)| !k.starts_with("GET ") && k.as_str() != "POST token")
        .map(|(_, n)| n)
        .sum()
}

fn pc_writes(h: &Harness) -> u64 {
    h.pc.request_counts()
        .iter()
        .filter(|(k, _)| !k.starts_with("GET ") && !k.contains("token"))
        .map(|(_, n)| n)
        .sum()
}

/// A referral with two solutions, one the catalogue has and one it lacks, synced into a
/// new opportunity: (referral id, opportunity id, the known solution's catalogue row).
async fn two_solution_pair(h: &Harness) -> (String, String, String) {
    let known = catalogue(h, "SOL-A", "Alpha Analytics");
    let created = h.pc.create_incoming_referral("Contoso ERP", "Contoso Ltd");
    let rid = created["id"].as_str().unwrap().to_string();
    set_solutions(
        h,
        &rid,
        json!([
            {"id": "SOL-B", "name": "Beta Boards", "type": "Name"},
            {"id": "SOL-A", "name": "Alpha Analytics", "type": "Name"},
        ]),
    )
    .await;
    let PairOutcome::OpportunityCreated { opportunity_id, .. } = from_referral(h, &rid).await
    else {
        panic!("expected an opportunity created");
    };
    (rid, opportunity_id, known)
}

#[tokio::test]
async fn a_referral_with_two_solutions_lands_as_two_rows_bound_to_the_catalogue() {
    let (h, _dir) = table_layout().await;
    let (_, opp, known) = two_solution_pair(&h).await;
    let rows = rows_of(&h, &opp);
    assert_eq!(ids(&rows), ["SOL-A", "SOL-B"]);
    // The catalogue's own row for the solution it has; a new one, named from the referral,
    // for the one it lacks.
    assert_eq!(rows["SOL-A"].1, known);
    let beta = h.dv.row(CATALOGUE_SET, &rows["SOL-B"].1).unwrap();
    assert_eq!(beta["cosell_name"], "Beta Boards");
    assert_eq!(h.dv.rows(CATALOGUE_SET).len(), 2);
    // The text column is not written in this layout.
    let row = h.dv.row("opportunities", &opp).unwrap();
    assert!(row.get(&h.engine.columns.solutions).is_none(), "{row}");
}

#[tokio::test]
async fn the_same_event_again_writes_nothing() {
    let (h, _dir) = table_layout().await;
    let (rid, opp, _) = two_solution_pair(&h).await;
    h.dv.reset_request_counts();
    h.pc.reset_request_counts();
    let again = from_referral(&h, &rid).await;
    assert!(matches!(again, PairOutcome::Unchanged { .. }), "{again:?}");
    // The poller's message for our own writes: the rows read equal the base.
    let echo = from_opportunity(&h, &opp).await.unwrap();
    assert!(matches!(echo, PairOutcome::Unchanged { .. }), "{echo:?}");
    assert_eq!(dv_writes(&h), 0, "{:?}", h.dv.request_counts());
    assert_eq!(pc_writes(&h), 0, "{:?}", h.pc.request_counts());
    assert_eq!(ids(&rows_of(&h, &opp)), ["SOL-A", "SOL-B"]);
}

#[tokio::test]
async fn a_seller_adds_and_removes_a_row_and_the_referral_follows() {
    let (h, _dir) = table_layout().await;
    let (rid, opp, _) = two_solution_pair(&h).await;
    let gamma = catalogue(&h, "SOL-C", "Gamma Grid");
    h.dv.user_insert(
        CHILD_SET,
        obj(json!({
            format!("_{CHILD_OPPORTUNITY}_value"): opp,
            format!("_{CHILD_CATALOGUE}_value"): gamma,
            "cosell_name": "Gamma Grid",
        })),
    )
    .unwrap();
    let alpha_row = rows_of(&h, &opp)["SOL-A"].0.clone();
    assert!(h.dv.user_delete(CHILD_SET, &alpha_row));

    let out = from_opportunity(&h, &opp).await.unwrap();
    assert!(matches!(out, PairOutcome::Updated { .. }), "{out:?}");
    let solutions = referral_solutions(&h, &rid).await;
    let listed: Vec<&str> = solutions
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["SOL-B", "SOL-C"]);
    // The solution that stayed keeps what Partner Center knows of it.
    assert_eq!(solutions[0]["name"], "Beta Boards");
    // Nothing written back to the rows, and the next event is no change.
    assert_eq!(ids(&rows_of(&h, &opp)), ["SOL-B", "SOL-C"]);
    let again = from_opportunity(&h, &opp).await.unwrap();
    assert!(matches!(again, PairOutcome::Unchanged { .. }), "{again:?}");
    let echo = from_referral(&h, &rid).await;
    assert!(matches!(echo, PairOutcome::Unchanged { .. }), "{echo:?}");
}

#[tokio::test]
async fn partner_center_changes_the_solutions_and_the_rows_follow() {
    let (h, _dir) = table_layout().await;
    let (rid, opp, _) = two_solution_pair(&h).await;
    let before = rows_of(&h, &opp);
    set_solutions(
        &h,
        &rid,
        json!([
            {"id": "SOL-D", "name": "Delta Docs", "type": "Name"},
            {"id": "SOL-B", "name": "Beta Boards", "type": "Name"},
        ]),
    )
    .await;
    h.dv.reset_request_counts();
    let out = from_referral(&h, &rid).await;
    assert!(matches!(out, PairOutcome::Updated { .. }), "{out:?}");
    let after = rows_of(&h, &opp);
    assert_eq!(ids(&after), ["SOL-B", "SOL-D"]);
    // The row that stays is the same row, not a delete and a create.
    assert_eq!(after["SOL-B"], before["SOL-B"]);
    // One write for the opportunity and its rows together.
    assert_eq!(dv_writes(&h), 1, "{:?}", h.dv.request_counts());

    h.dv.reset_request_counts();
    h.pc.reset_request_counts();
    let again = from_referral(&h, &rid).await;
    assert!(matches!(again, PairOutcome::Unchanged { .. }), "{again:?}");
    let echo = from_opportunity(&h, &opp).await.unwrap();
    assert!(matches!(echo, PairOutcome::Unchanged { .. }), "{echo:?}");
    assert_eq!(dv_writes(&h) + pc_writes(&h), 0);
}

#[tokio::test]
async fn a_co_sell_without_solution_rows_is_refused_before_sending() {
    let (h, _dir) = table_layout().await;
    // The fixture fills the text column; in this layout only rows count.
    let opp = crm_rows::flagged_opportunity(&h, Some(crm_rows::HELP_DEMO), Some(100_000_001));
    h.pc.reset_request_counts();
    let err = from_opportunity(&h, &opp).await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    // The mapping's required solutions field, checked before the co-sell's own rule.
    assert!(
        err.to_string().contains("details.requirements.solutions"),
        "{err}"
    );
    assert_eq!(pc_writes(&h), 0, "{:?}", h.pc.request_counts());
    assert!(h.pc.partner_referrals().is_empty());

    // The seller adds a solution row: the create goes out with it.
    let alpha = catalogue(&h, "SOL-A", "Alpha Analytics");
    h.dv.user_insert(
        CHILD_SET,
        obj(json!({
            format!("_{CHILD_OPPORTUNITY}_value"): opp,
            format!("_{CHILD_CATALOGUE}_value"): alpha,
        })),
    )
    .unwrap();
    let out = from_opportunity(&h, &opp).await.unwrap();
    let PairOutcome::ReferralCreated { referral_id, .. } = out else {
        panic!("expected ReferralCreated, got {out:?}");
    };
    let solutions = referral_solutions(&h, &referral_id).await;
    assert_eq!(solutions, [json!({"id": "SOL-A"})]);
}

/// Requests (token requests left out) on each side.
fn counted(h: &Harness) -> (u64, u64, String) {
    let kept = |counts: BTreeMap<String, u64>| {
        let kept: Vec<(String, u64)> = counts
            .into_iter()
            .filter(|(route, _)| !route.contains("token"))
            .collect();
        let total = kept.iter().map(|(_, n)| n).sum::<u64>();
        let routes: Vec<String> = kept.iter().map(|(r, n)| format!("{r} x{n}")).collect();
        (total, routes.join(", "))
    };
    let (pc, pc_routes) = kept(h.pc.request_counts());
    let (dv, dv_routes) = kept(h.dv.request_counts());
    h.pc.reset_request_counts();
    h.dv.reset_request_counts();
    (pc, dv, format!("PC [{pc_routes}] DV [{dv_routes}]"))
}

/// What the table layout costs per case (docs/performance.md); `--nocapture` prints it.
#[tokio::test]
async fn what_the_table_layout_costs_per_case() {
    let (h, _dir) = table_layout().await;
    catalogue(&h, "SOL-A", "Alpha Analytics");
    let mut cases = Vec::new();
    let new_referral = |name: &'static str| {
        let created = h.pc.create_incoming_referral(name, name);
        created["id"].as_str().unwrap().to_string()
    };
    // A warm process, as in pair_requests: the currency rows are read once and cached.
    let warm = new_referral("Warm-up deal");
    from_referral(&h, &warm).await;
    let first = new_referral("Contoso ERP");
    let second = new_referral("Fabrikam CRM");
    for rid in [&first, &second] {
        set_solutions(&h, rid, json!([{"id": "SOL-A", "name": "Alpha Analytics"}])).await;
    }
    counted(&h);
    let PairOutcome::OpportunityCreated {
        opportunity_id: opp,
        ..
    } = from_referral(&h, &first).await
    else {
        panic!("expected an opportunity created");
    };
    cases.push(("new referral, solution new to the process", counted(&h)));
    from_referral(&h, &second).await;
    cases.push(("new referral, solution known to the process", counted(&h)));
    from_referral(&h, &first).await;
    cases.push(("our own echo (Partner Center side)", counted(&h)));
    from_opportunity(&h, &opp).await.unwrap();
    cases.push(("our own echo (CRM side)", counted(&h)));
    set_solutions(
        &h,
        &first,
        json!([{"id": "SOL-A"}, {"id": "SOL-E", "name": "Echo"}]),
    )
    .await;
    counted(&h);
    from_referral(&h, &first).await;
    cases.push(("Microsoft adds a solution the catalogue lacks", counted(&h)));
    set_solutions(&h, &first, json!([{"id": "SOL-E"}])).await;
    counted(&h);
    from_referral(&h, &first).await;
    cases.push(("Microsoft removes a solution", counted(&h)));
    // A catalogue row the opportunity does not have yet (it has SOL-E); the rows' order is
    // their ids', so pick by solution id.
    let alpha =
        h.dv.rows(CATALOGUE_SET)
            .into_iter()
            .find(|r| r["cosell_solutionid"] != json!("SOL-E"))
            .expect("another catalogue row")["cosell_solutiondetailid"]
            .clone();
    h.dv.user_insert(
        CHILD_SET,
        obj(json!({
            format!("_{CHILD_OPPORTUNITY}_value"): opp,
            format!("_{CHILD_CATALOGUE}_value"): alpha,
        })),
    )
    .unwrap();
    counted(&h);
    from_opportunity(&h, &opp).await.unwrap();
    cases.push(("seller adds a row", counted(&h)));
    for (name, (pc, dv, routes)) in &cases {
        println!("requests: {name:<46} partner_center={pc} dataverse={dv}  {routes}");
    }
    let expected = [
        (1, 3), // GET referral; customer lookups batch, catalogue GET, create batch
        (1, 2), // the catalogue row is known: no catalogue read
        (1, 0),
        (0, 1),
        (1, 3), // GET referral; GET opportunity, catalogue GET, one batch
        (1, 2), // GET referral; GET opportunity, one batch
        (2, 1), // GET opportunity; GET and PATCH referral
    ];
    for ((name, (pc, dv, routes)), want) in cases.iter().zip(expected) {
        assert_eq!((*pc, *dv), want, "{name}: {routes}");
    }
}

/// The messages queued since the last call, acknowledged.
async fn drained(h: &Harness) -> Vec<SyncMessage> {
    drain(h.queue.as_ref())
        .await
        .iter()
        .map(|body| SyncMessage::parse(body).unwrap())
        .collect()
}

/// Both CRM polls, as the scheduled poll task runs them: (opportunity messages, solution
/// row messages).
async fn poll_crm(h: &Harness) -> (Vec<SyncMessage>, Vec<SyncMessage>) {
    use cosell::engine::poller::poll_opportunities;
    use cosell::engine::solution_poller::poll_solution_rows;
    poll_opportunities(
        &h.engine.dv,
        h.store.as_ref(),
        h.queue.as_ref(),
        &h.config.columns,
    )
    .await
    .unwrap();
    let opportunities = drained(h).await;
    poll_solution_rows(&h.engine.dv, h.store.as_ref(), h.queue.as_ref())
        .await
        .unwrap();
    (opportunities, drained(h).await)
}

fn add_row(h: &Harness, opp: &str, detail: &str) -> String {
    h.dv.user_insert(
        CHILD_SET,
        obj(json!({
            format!("_{CHILD_OPPORTUNITY}_value"): opp,
            format!("_{CHILD_CATALOGUE}_value"): detail,
        })),
    )
    .unwrap()
}

fn keys(messages: &[SyncMessage]) -> Vec<&str> {
    messages.iter().map(|m| m.key.as_str()).collect()
}

async fn listed_solutions(h: &Harness, rid: &str) -> Vec<String> {
    referral_solutions(h, rid)
        .await
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn a_row_added_or_removed_alone_is_polled_and_reaches_the_referral() {
    let (h, _dir) = table_layout().await;
    let (rid, opp, _) = two_solution_pair(&h).await;
    // The first polls read everything: our own rows' opportunity comes back once, an echo.
    let (_, rows) = poll_crm(&h).await;
    assert_eq!(keys(&rows), [opp.as_str()]);
    for m in &rows {
        let out = reconcile_pair(&h.engine, m).await.unwrap();
        assert!(matches!(out, PairOutcome::Unchanged { .. }), "{out:?}");
    }
    assert_eq!(poll_crm(&h).await, (vec![], vec![]));

    // The seller adds a row: the opportunity itself is unchanged, so only the row poll
    // sees it, and queues the opportunity once.
    let gamma = catalogue(&h, "SOL-C", "Gamma Grid");
    let before = h.dv.row("opportunities", &opp).unwrap()["modifiedon"].clone();
    add_row(&h, &opp, &gamma);
    assert_eq!(
        h.dv.row("opportunities", &opp).unwrap()["modifiedon"],
        before
    );
    let (opportunities, rows) = poll_crm(&h).await;
    assert!(opportunities.is_empty(), "{opportunities:?}");
    assert_eq!(keys(&rows), [opp.as_str()]);
    assert!(
        rows[0].version.is_none(),
        "a row change is not the opportunity's version"
    );
    let out = reconcile_pair(&h.engine, &rows[0]).await.unwrap();
    assert!(matches!(out, PairOutcome::Updated { .. }), "{out:?}");
    assert_eq!(
        listed_solutions(&h, &rid).await,
        ["SOL-A", "SOL-B", "SOL-C"]
    );

    // The seller removes a row: its tombstone carries only the row's id, which the poll
    // remembered with its opportunity.
    let alpha_row = rows_of(&h, &opp)["SOL-A"].0.clone();
    assert!(h.dv.user_delete(CHILD_SET, &alpha_row));
    let (opportunities, rows) = poll_crm(&h).await;
    assert!(opportunities.is_empty(), "{opportunities:?}");
    assert_eq!(keys(&rows), [opp.as_str()]);
    let out = reconcile_pair(&h.engine, &rows[0]).await.unwrap();
    assert!(matches!(out, PairOutcome::Updated { .. }), "{out:?}");
    assert_eq!(listed_solutions(&h, &rid).await, ["SOL-B", "SOL-C"]);
    assert_eq!(poll_crm(&h).await, (vec![], vec![]));
    // A quiet row poll is one request.
    h.dv.reset_request_counts();
    cosell::engine::solution_poller::poll_solution_rows(
        &h.engine.dv,
        h.store.as_ref(),
        h.queue.as_ref(),
    )
    .await
    .unwrap();
    let counts = h.dv.request_counts();
    let requests: u64 = counts
        .iter()
        .filter(|(k, _)| !k.contains("token"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(requests, 1, "{counts:?}");
}

#[tokio::test]
async fn the_row_poll_remembers_rows_and_skips_a_row_made_and_removed_between_polls() {
    let (h, _dir) = table_layout().await;
    let (_, opp, known) = two_solution_pair(&h).await;
    poll_crm(&h).await;
    for (row, _) in rows_of(&h, &opp).values() {
        let (owner, _) = h
            .store
            .get_state(&format!("solution-row/{row}"))
            .await
            .unwrap()
            .expect("each row seen is remembered with its opportunity");
        assert_eq!(owner, opp);
    }
    // Made and removed between two polls: only its tombstone is read, and it was never
    // synced, so nothing is queued.
    let other = crm_rows::flagged_opportunity(&h, None, None);
    let row = add_row(&h, &other, &known);
    assert!(h.dv.user_delete(CHILD_SET, &row));
    let (_, rows) = poll_crm(&h).await;
    assert!(rows.is_empty(), "{rows:?}");
    // An opportunity deleted with its rows: its rows' tombstones queue it, and the pair's
    // reconcile finds the opportunity gone.
    assert!(h.dv.user_delete("opportunities", &opp));
    assert!(
        rows_of(&h, &opp).is_empty(),
        "the rows go with the opportunity"
    );
    let (_, rows) = poll_crm(&h).await;
    assert_eq!(keys(&rows), [opp.as_str()]);
}

#[tokio::test]
async fn without_change_tracking_on_the_rows_the_poll_reads_them_by_modifiedon() {
    use cosell::engine::solution_poller::{poll_solution_rows, SOLUTION_ROWS_STATE_KEY};
    let (h, _dir) = table_layout().await;
    let (rid, opp, _) = two_solution_pair(&h).await;
    assert!(h.dv.set_change_tracking(CHILD_SET, false));
    poll_crm(&h).await;
    let (state, _) = h
        .store
        .get_state(SOLUTION_ROWS_STATE_KEY)
        .await
        .unwrap()
        .unwrap();
    assert!(state.contains("watermark"), "{state}");
    // `modifiedon` has whole seconds: the next row is a later second.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let gamma = catalogue(&h, "SOL-C", "Gamma Grid");
    add_row(&h, &opp, &gamma);
    let report = poll_solution_rows(&h.engine.dv, h.store.as_ref(), h.queue.as_ref())
        .await
        .unwrap();
    assert_eq!((report.enqueued, report.deleted_rows), (1, 0));
    let rows = drained(&h).await;
    assert_eq!(keys(&rows), [opp.as_str()]);
    reconcile_pair(&h.engine, &rows[0]).await.unwrap();
    assert_eq!(
        listed_solutions(&h, &rid).await,
        ["SOL-A", "SOL-B", "SOL-C"]
    );
    // The rows read again at the watermark are not queued twice.
    assert_eq!(poll_crm(&h).await.1, vec![]);
}

#[tokio::test]
async fn the_column_layout_polls_no_rows() {
    use cosell::engine::solution_poller::poll_solution_rows;
    let h = Harness::start().await;
    h.dv.reset_request_counts();
    let report = poll_solution_rows(&h.engine.dv, h.store.as_ref(), h.queue.as_ref())
        .await
        .unwrap();
    assert_eq!(report.enqueued, 0);
    assert!(
        h.dv.request_counts().is_empty(),
        "{:?}",
        h.dv.request_counts()
    );
}
