// The `#[pg_test]`s of CSM inputs (docs/acting.md#csm-inputs): recording with validation and
// audit, the roles, and the manual values and band overrides applied by snapshot, the generated
// views and the entity forms of the scoring functions. Expected scores are worked out by hand
// from the model below: usage = logins / 50 (weight 2), sentiment by its map (weight 1).

use pgrx::prelude::*;

use crate::pg::test_support::*;

const CSM_MODEL: &str = r#"{"components": [
    {"name": "usage", "input": "logins", "weight": 2, "normalize": {"type": "linear", "min": 0, "max": 50}},
    {"name": "sentiment", "input": "csm_sentiment", "weight": 1,
     "normalize": {"type": "map", "values": {"happy": 1, "neutral": 0.5, "at_risk": 0}}}],
  "bands": [{"name": "red", "min": 0}, {"name": "yellow", "min": 40}, {"name": "green", "min": 70}]}"#;

fn setup() {
    install_error_helper();
    Spi::run(&format!(
        "SELECT health_score.set_model('csm', $${CSM_MODEL}$$::jsonb);
         CREATE TABLE csm_accounts (id text PRIMARY KEY, logins float8, csm_sentiment text);
         INSERT INTO csm_accounts VALUES ('a', 50, 'happy'), ('b', 25, NULL), ('c', 0, 'neutral');"
    ))
    .unwrap();
}

fn text(query: &str) -> Option<String> {
    Spi::get_one::<String>(query).unwrap()
}

#[pg_test]
fn recording_validates_every_value_and_audits_every_change() {
    setup();
    Spi::run("SELECT health_score.set_manual_input('csm', 'a', 'csm_sentiment', 'at_risk', 'champion left')").unwrap();
    // a value no leaf reading the input can use: 22023 naming the component and its path
    let (state, message) =
        error_of("SELECT health_score.set_manual_input('csm', 'a', 'csm_sentiment', 'meh', 'unsure')");
    assert_eq!(state, "22023");
    assert!(message.contains("component \"sentiment\" at components[1]"), "{message}");
    let (state, message) = error_of("SELECT health_score.set_manual_input('csm', 'a', 'logins', 'many', 'x')");
    assert_eq!(state, "22023");
    assert!(message.contains("not a number"), "{message}");
    let (state, message) = error_of("SELECT health_score.set_manual_input('csm', 'a', 'nps', '9', 'x')");
    assert_eq!((state.as_str(), message.contains("reads no input \"nps\"")), ("22023", true), "{message}");
    assert_eq!(error_of("SELECT health_score.set_manual_input('cms', 'a', 'logins', '9', 'x')").0, "42704");
    assert_eq!(error_of("SELECT health_score.set_manual_input('csm', 'a', 'logins', '9', ' ')").0, "22023");
    assert_eq!(error_of("SELECT health_score.set_manual_input('csm', 'a', 'logins', NULL, 'x')").0, "22023");
    assert_eq!(error_of("SELECT health_score.set_band_override('csm', 'a', 'blue', 'x')").0, "22023");
    // recording again replaces
    Spi::run(
        "SELECT health_score.set_manual_input('csm', 'a', 'csm_sentiment', 'neutral', 'call went well', '2030-01-01')",
    )
    .unwrap();
    assert_eq!(
        text("SELECT value || ' ' || reason || ' ' || expires_at::date FROM health_score.manual_inputs"),
        Some("neutral call went well 2030-01-01".into())
    );
    assert_eq!(
        Spi::get_one::<bool>("SELECT health_score.clear_manual_input('csm', 'a', 'csm_sentiment', 'resolved')")
            .unwrap(),
        Some(true)
    );
    assert_eq!(
        Spi::get_one::<bool>("SELECT health_score.clear_manual_input('csm', 'a', 'csm_sentiment')").unwrap(),
        Some(false)
    );
    Spi::run("SELECT health_score.set_band_override('csm', 'b', 'green', 'renewal signed')").unwrap();
    Spi::run("SELECT health_score.clear_band_override('csm', 'b', 'over')").unwrap();
    assert_eq!(
        text(
            "SELECT string_agg(concat_ws('/', kind, input, coalesce(old_value, '-'), coalesce(new_value, '-'),
                                         coalesce(new_expires_at::date::text, '-'), reason,
                                         (changed_by = current_user)::text), '; ' ORDER BY id)
               FROM health_score.manual_audit"
        ),
        Some(
            "input/csm_sentiment/-/at_risk/-/champion left/true; \
             input/csm_sentiment/at_risk/neutral/2030-01-01/call went well/true; \
             input/csm_sentiment/neutral/-/-/resolved/true; \
             band/-/green/-/renewal signed/true; band/green/-/-/over/true"
                .into()
        )
    );
}

#[pg_test]
fn account_managers_record_readers_read_and_nobody_writes_the_tables_directly() {
    setup();
    Spi::run(
        "CREATE ROLE hs_test_csm; GRANT health_score_csm TO hs_test_csm;
         CREATE ROLE hs_test_reader2; GRANT health_score_reader TO hs_test_reader2;
         SET LOCAL ROLE hs_test_csm;
         SELECT health_score.set_manual_input('csm', 'a', 'logins', '10', 'usage report late');
         SELECT health_score.set_band_override('csm', 'a', 'red', 'escalation');",
    )
    .unwrap();
    assert_eq!(text("SELECT set_by FROM health_score.manual_inputs"), Some("hs_test_csm".into()));
    assert_eq!(
        text("SELECT string_agg(DISTINCT changed_by, ',') FROM health_score.manual_audit"),
        Some("hs_test_csm".into())
    );
    for forged in [
        "INSERT INTO health_score.manual_audit (changed_at, changed_by, model, entity_key, kind, input) VALUES (now(), 'x', 'csm', 'a', 'input', 'logins')",
        "UPDATE health_score.manual_inputs SET value = '50'",
        "DELETE FROM health_score.band_overrides",
        "SELECT health_score_internal._record_manual('input', 'csm', 'a', 'logins', '1', 'x', NULL, 10::oid)",
    ] {
        assert_eq!(error_of(forged).0, "42501", "{forged}");
    }
    Spi::run("RESET ROLE; SET LOCAL ROLE hs_test_reader2").unwrap();
    assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM health_score.manual_audit").unwrap(), Some(2));
    assert_eq!(error_of("SELECT health_score.set_manual_input('csm', 'a', 'logins', '1', 'x')").0, "42501");
    assert_eq!(error_of("SELECT health_score.clear_band_override('csm', 'a')").0, "42501");
    assert_eq!(error_of("DELETE FROM health_score.manual_audit").0, "42501");
    Spi::run("RESET ROLE").unwrap();
}

#[pg_test]
fn snapshot_applies_active_manual_inputs_and_shows_them_until_they_expire() {
    setup();
    Spi::run(
        "SELECT health_score.set_manual_input('csm', 'a', 'csm_sentiment', 'at_risk', 'champion left', '2026-06-01');
         SELECT health_score.set_manual_input('csm', 'b', 'csm_sentiment', 'happy', 'great QBR');
         SELECT health_score.set_manual_input('csm', 'zz', 'logins', '3', 'not in the source');
         SELECT health_score.snapshot('csm', 'csm_accounts', 'id', '2026-05-01');
         SELECT health_score.snapshot('csm', 'csm_accounts', 'id', '2026-07-01');",
    )
    .unwrap();
    let score = |key: &str, at: &str| {
        sql_f64(&format!("SELECT score FROM health_score.scores WHERE entity_key = '{key}' AND scored_at = '{at}'"))
    };
    // a: usage 1 (x2) and at_risk 0 → 200/3 while active; happy 1 → 100 after it expired
    assert!(close(score("a", "2026-05-01"), Some(200.0 / 3.0)));
    assert!(close(score("a", "2026-07-01"), Some(100.0)));
    // b: the manual value fills a missing input (no expiry): 0.5 x 2 + 1 → 200/3 both times
    assert!(close(score("b", "2026-05-01"), Some(200.0 / 3.0)));
    assert!(close(score("b", "2026-07-01"), Some(200.0 / 3.0)));
    // c has none: neutral 0.5 → 50/3
    assert!(close(score("c", "2026-05-01"), Some(50.0 / 3.0)));
    assert_eq!(
        text(
            "SELECT manual->'inputs'->'csm_sentiment'->>'value' || ' by ' || (manual->'inputs'->'csm_sentiment'->>'set_by' = current_user)::text
                    || ' until ' || (manual->'inputs'->'csm_sentiment'->>'expires_at')::timestamptz::date
               FROM health_score.manual_applied WHERE entity_key = 'a' AND scored_at = '2026-05-01'"
        ),
        Some("at_risk by true until 2026-06-01".into())
    );
    assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM health_score.manual_applied").unwrap(), Some(3));
    // the stored inputs are the source's, as rescore reads them
    assert_eq!(
        text("SELECT inputs->>'csm_sentiment' FROM health_score.scores WHERE entity_key = 'a' AND scored_at = '2026-05-01'"),
        Some("happy".into())
    );
}

#[pg_test]
fn a_band_override_forces_the_band_and_hysteresis_continues_from_the_models_own() {
    install_error_helper();
    Spi::run(
        r#"SELECT health_score.set_model('walk', '{"components": [{"name": "x", "input": "x", "weight": 1,
                "normalize": {"type": "linear", "min": 0, "max": 100}}],
              "bands": [{"name": "red", "min": 0}, {"name": "yellow", "min": 40}, {"name": "green", "min": 60}],
              "band_hysteresis": 5}'::jsonb);
           CREATE TABLE walk (id text, x float8);
           INSERT INTO walk VALUES ('a', 38);
           SELECT health_score.snapshot('walk', 'walk', 'id', '2026-01-01');
           SELECT health_score.set_band_override('walk', 'a', 'green', 'exec sponsor engaged', '2026-01-03');
           UPDATE walk SET x = 39;
           SELECT health_score.snapshot('walk', 'walk', 'id', '2026-01-02');
           UPDATE walk SET x = 42;
           SELECT health_score.snapshot('walk', 'walk', 'id', '2026-01-04');"#,
    )
    .unwrap();
    let rows = Spi::connect(|c| {
        c.select(
            "SELECT s.band || ':' || s.band_rank || ':' || coalesce(m.model_band, '-')
               FROM health_score.scores s LEFT JOIN health_score.manual_applied m USING (model, entity_key, scored_at)
              ORDER BY scored_at",
            None,
            &[],
        )
        .unwrap()
        .map(|r| r.get::<String>(1).unwrap().unwrap())
        .collect::<Vec<_>>()
    });
    // forced green on 2 January (its own band red); on 4 January the override has expired and
    // 42 keeps red (42 < 40 + 5) from the model's own band, where from green it would be yellow
    assert_eq!(rows, vec!["red:0:-", "green:2:red", "red:0:-"]);
    assert_eq!(
        text("SELECT band || '/' || previous_band || '/' || coalesce(previous_model_band, '-') FROM health_score_internal.current_state"),
        Some("red/green/red".into())
    );
}

#[pg_test]
fn entity_forms_apply_the_entitys_manual_inputs_and_show_them() {
    setup();
    Spi::run(
        "SELECT health_score.set_manual_input('csm', 'a', 'csm_sentiment', 'at_risk', 'champion left');
         SELECT health_score.set_band_override('csm', 'c', 'green', 'new champion');",
    )
    .unwrap();
    let input = r#"'{"logins": 50, "csm_sentiment": "happy"}'::jsonb"#;
    assert!(close(sql_f64(&format!("SELECT health_score.score('csm', {input}, 'a')")), Some(200.0 / 3.0)));
    assert!(close(sql_f64(&format!("SELECT health_score.score('csm', {input}, NULL)")), Some(100.0)));
    assert!(close(sql_f64(&format!("SELECT health_score.score('csm', {input}, 'b')")), Some(100.0)));
    // the row forms, over a table, once per statement
    assert_eq!(
        text(
            "SELECT string_agg(id || '=' || round(health_score.score('csm', t, id)::numeric, 3) || '/'
                               || health_score.band('csm', t, NULL, id) || '/' || (health_score.assess('csm', t, id)).band,
                               ' ' ORDER BY id)
               FROM csm_accounts t"
        ),
        Some("a=66.667/yellow/yellow b=50.000/yellow/yellow c=16.667/green/green".into())
    );
    assert_eq!(
        text(
            "SELECT string_agg(coalesce(component, '(band)') || ':' || coalesce(raw, '-') || ':' || status || ':'
                               || coalesce(manual->>'reason', '-') || coalesce(':' || (manual->>'model_band'), ''), ' ')
               FROM health_score.explain('csm', (SELECT t FROM csm_accounts t WHERE id = 'a'), 'a')"
        ),
        Some("usage:50:ok:- sentiment:at_risk:ok:champion left".into())
    );
    assert_eq!(
        text(
            "SELECT string_agg(coalesce(component, '(band)') || ':' || coalesce(raw, '-') || ':' || status || ':'
                               || coalesce(manual->>'reason', '-') || coalesce(':' || (manual->>'model_band'), ''), ' ')
               FROM health_score.explain('csm', '{\"logins\": 0, \"csm_sentiment\": \"neutral\"}'::jsonb, 'c')"
        ),
        Some("usage:0:ok:- sentiment:neutral:ok:- (band):green:band_override:new champion:red".into())
    );
}

#[pg_test]
fn generated_views_apply_manual_inputs_and_band_overrides() {
    setup();
    Spi::run(
        "SELECT health_score.create_view('csm_view', 'csm', 'csm_accounts', 'id');
         SELECT health_score.set_manual_input('csm', 'a', 'csm_sentiment', 'at_risk', 'champion left');
         SELECT health_score.set_band_override('csm', 'c', 'yellow', 'new champion');",
    )
    .unwrap();
    assert_eq!(
        text("SELECT string_agg(id || '=' || round(score::numeric, 3) || '/' || band, ' ' ORDER BY id) FROM csm_view"),
        Some("a=66.667/yellow b=50.000/yellow c=16.667/yellow".into())
    );
    // an expired one no longer applies, with nothing run to remove it
    Spi::run("UPDATE health_score.manual_inputs SET expires_at = now() - interval '1 second'").unwrap();
    assert!(close(sql_f64("SELECT score FROM csm_view WHERE id = 'a'"), Some(100.0)));
}
