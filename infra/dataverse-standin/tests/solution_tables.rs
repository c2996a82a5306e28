//! The solution tables as Dataverse has them: an opportunity's solution rows read with it
//! through its collection-valued navigation property (`$expand`, `$select` inside, a nested
//! `$expand` of the catalogue lookup), lookups set only by `@odata.bind` to rows that exist,
//! deletes, and a change set that makes an opportunity and its rows all or none.

mod common;

use common::*;
use dataverse_standin::solution_tables::{
    CATALOGUE_SET, CHILD_CATALOGUE, CHILD_OPPORTUNITY, CHILD_SET, OPPORTUNITY_NAV,
};
use serde_json::{json, Value};

const EXPAND: &str = "cosell_opportunity_cosell_opportunitysolution($select=cosell_name;$expand=cosell_solutiondetailid($select=cosell_solutionid,cosell_name))";

struct Api {
    env: Env,
    token: String,
}

impl Api {
    async fn start() -> Api {
        let env = start().await;
        let token = env.tokens.token().await.unwrap().expose().to_string();
        Api { env, token }
    }

    fn url(&self, path: &str) -> String {
        format!("{}api/data/v9.2/{path}", self.env.standin.base_url())
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .env
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
            .header("Accept", "application/json");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn catalogue(&self, solution_id: &str, name: &str) -> String {
        self.env
            .standin
            .user_insert(
                CATALOGUE_SET,
                map(json!({"cosell_solutionid": solution_id, "cosell_name": name})),
            )
            .unwrap()
    }

    fn opportunity(&self, name: &str) -> String {
        self.env
            .standin
            .user_insert("opportunities", map(json!({"name": name, "statecode": 0})))
            .unwrap()
    }

    async fn add_solution(&self, opp: &str, catalogue: &str) -> (u16, Value) {
        let body = json!({
            "cosell_name": "row",
            format!("{CHILD_OPPORTUNITY}@odata.bind"): format!("/opportunities({opp})"),
            format!("{CHILD_CATALOGUE}@odata.bind"): format!("/{CATALOGUE_SET}({catalogue})"),
        });
        self.send(reqwest::Method::POST, CHILD_SET, Some(body))
            .await
    }

    async fn solutions_of(&self, opp: &str) -> Vec<String> {
        let (status, body) = self
            .send(
                reqwest::Method::GET,
                &format!("opportunities({opp})?$select=name&$expand={EXPAND}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body[OPPORTUNITY_NAV]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r[CHILD_CATALOGUE]["cosell_solutionid"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }
}

#[tokio::test]
async fn an_opportunity_reads_its_own_solution_rows_with_the_catalogue_columns_selected() {
    let api = Api::start().await;
    let (a, b) = (
        api.catalogue("SOL-A", "Alpha"),
        api.catalogue("SOL-B", "Beta"),
    );
    let (opp, other) = (api.opportunity("Deal"), api.opportunity("Other deal"));
    for (o, c) in [(&opp, &a), (&opp, &b), (&other, &a)] {
        let (status, body) = api.add_solution(o, c).await;
        assert_eq!(status, 204, "{body}");
    }
    let (status, body) = api
        .send(
            reqwest::Method::GET,
            &format!("opportunities({opp})?$select=name&$expand={EXPAND}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let rows = body[OPPORTUNITY_NAV].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{body}");
    for row in rows {
        // `$select` inside the expand: the row's key, etag and the selected column only.
        assert!(row["@odata.etag"].is_string());
        assert!(row["cosell_opportunitysolutionid"].is_string());
        assert_eq!(row["cosell_name"], "row");
        assert!(
            row.get(format!("_{CHILD_OPPORTUNITY}_value")).is_none(),
            "{row}"
        );
        let detail = &row[CHILD_CATALOGUE];
        assert!(detail["cosell_solutionid"].is_string());
        assert!(detail["cosell_solutiondetailid"].is_string());
        assert!(detail.get("createdon").is_none(), "{detail}");
    }
    let mut ids = api.solutions_of(&opp).await;
    ids.sort();
    assert_eq!(ids, ["SOL-A", "SOL-B"]);
    assert_eq!(api.solutions_of(&other).await, ["SOL-A"]);

    // A collection read expands each row.
    let (status, body) = api
        .send(
            reqwest::Method::GET,
            &format!("opportunities?$select=name&$filter=name eq 'Other deal'&$expand={EXPAND}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["value"][0][OPPORTUNITY_NAV].as_array().unwrap().len(),
        1
    );
}

#[tokio::test]
async fn an_expand_the_table_lacks_or_orders_a_nested_expand_is_refused() {
    let api = Api::start().await;
    let opp = api.opportunity("Deal");
    let (status, body) = api
        .send(
            reqwest::Method::GET,
            &format!("opportunities({opp})?$select=name&$expand=msp_solutions($select=msp_name)"),
            None,
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Could not find a property named 'msp_solutions'"));
    let ordered = EXPAND.replace(
        "$select=cosell_name;",
        "$select=cosell_name;$orderby=cosell_name;",
    );
    let (status, body) = api
        .send(
            reqwest::Method::GET,
            &format!("opportunities({opp})?$expand={ordered}"),
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    // A nested expand through a lookup the child lacks.
    let (status, _) = api
        .send(
            reqwest::Method::GET,
            &format!("opportunities({opp})?$expand={OPPORTUNITY_NAV}($expand=parentaccountid)"),
            None,
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn solution_rows_bind_only_to_rows_that_exist_and_only_through_their_lookups() {
    let api = Api::start().await;
    let opp = api.opportunity("Deal");
    let missing = "00000000-0000-0000-0000-00000000dead";
    let (status, body) = api.add_solution(&opp, missing).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Does Not Exist"));
    let catalogue = api.catalogue("SOL-A", "Alpha");
    let (status, _) = api.add_solution(missing, &catalogue).await;
    assert_eq!(status, 404);
    // A lookup written as its value property, or through a property the table lacks.
    for body in [
        json!({format!("_{CHILD_OPPORTUNITY}_value"): opp}),
        json!({"parentaccountid@odata.bind": format!("/opportunities({opp})")}),
        json!({format!("{CHILD_CATALOGUE}@odata.bind"): format!("/opportunities({opp})")}),
    ] {
        let (status, body) = api.send(reqwest::Method::POST, CHILD_SET, Some(body)).await;
        assert_eq!(status, 400, "{body}");
    }
    assert!(api.env.standin.rows(CHILD_SET).is_empty());

    let (status, _) = api.add_solution(&opp, &catalogue).await;
    assert_eq!(status, 204);
    let row = api.env.standin.rows(CHILD_SET).pop().unwrap();
    assert_eq!(row[format!("_{CHILD_OPPORTUNITY}_value")], json!(opp));
    assert_eq!(row[format!("_{CHILD_CATALOGUE}_value")], json!(catalogue));
    let id = row["cosell_opportunitysolutionid"].as_str().unwrap();
    let (status, _) = api
        .send(reqwest::Method::DELETE, &format!("{CHILD_SET}({id})"), None)
        .await;
    assert_eq!(status, 204);
    assert!(api.solutions_of(&opp).await.is_empty());
    let (status, _) = api
        .send(reqwest::Method::DELETE, &format!("{CHILD_SET}({id})"), None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_change_set_makes_the_opportunity_and_its_rows_all_or_none() {
    use cosell::dataverse::{DataverseClient, DataverseError, NewRow};
    use std::collections::BTreeMap;

    let api = Api::start().await;
    let mapping = cosell::mapping::Mapping::from_toml_str(
        "extends = \"default\"\n[solutions]\nlayout = \"table\"\n",
    )
    .unwrap();
    let client = DataverseClient::new(
        api.env.http.clone(),
        api.env.tokens.clone(),
        api.env.standin.base_url(),
        columns(),
        cosell::retry::RetryPolicy::fast(),
    )
    .with_mapping(&mapping);
    assert!(client.solution_tables_missing().await.unwrap().is_empty());
    let opp = "5a1c0d2e-0000-4000-8000-0000000000a1";
    let names = BTreeMap::from([("SOL-Z".to_string(), "Zeta".to_string())]);
    let alpha = api.catalogue("SOL-A", "Alpha");
    let (body, writes) = plan(&client, opp, &names).await;
    assert!(
        !body.contains_key("cosell_solutions"),
        "the text is not a column here"
    );
    // A catalogue row for the id it lacks, and a row per solution.
    assert_eq!(writes.len(), 3, "{writes:?}");

    // The catalogue row bound to is deleted meanwhile: the bind fails, and with it all.
    assert!(api.env.standin.user_delete(CATALOGUE_SET, &alpha));
    let creates = [NewRow::opportunity(opp, body.clone())];
    let none = serde_json::Map::new();
    let err = client
        .write_opportunity_rows(opp, None, &none, &writes, &creates)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Does Not Exist"), "{err}");
    assert!(api.env.standin.row("opportunities", opp).is_none());
    assert!(api.env.standin.rows(CHILD_SET).is_empty());
    assert!(api.env.standin.rows(CATALOGUE_SET).is_empty());

    // Planned again (what was learnt of the catalogue is forgotten after a failure).
    let (body, writes) = plan(&client, opp, &names).await;
    assert_eq!(writes.len(), 4, "{writes:?}");
    let creates = [NewRow::opportunity(opp, body)];
    let made = client
        .write_opportunity_rows(opp, None, &none, &writes, &creates)
        .await
        .unwrap();
    assert_eq!(made.column_str("cosell_solutions"), Some("SOL-A;SOL-Z"));
    assert_eq!(api.solutions_of(opp).await.len(), 2);
    // Sent again after a lost answer: refused on the first row, nothing doubled.
    let again = client
        .write_opportunity_rows(opp, None, &none, &writes, &creates)
        .await
        .unwrap_err();
    assert!(
        matches!(again, DataverseError::Conflict { .. }),
        "{again:?}"
    );
    assert_eq!(api.env.standin.rows(CHILD_SET).len(), 2);
    assert_eq!(api.env.standin.rows(CATALOGUE_SET).len(), 2);
}

async fn plan(
    client: &cosell::dataverse::DataverseClient,
    opp: &str,
    names: &std::collections::BTreeMap<String, String>,
) -> (
    serde_json::Map<String, Value>,
    Vec<cosell::dataverse::RowWrite>,
) {
    let mut body = map(json!({"name": "Rows deal", "cosell_solutions": "SOL-Z;SOL-A"}));
    let writes = client
        .plan_solution_rows(opp, None, &mut body, names)
        .await
        .unwrap();
    (body, writes)
}
