//! CSM inputs (docs/acting.md#csm-inputs) in a cluster of their own: the manual inputs, band
//! overrides and their audit survive `pg_dump`/`pg_restore`, and go on applying after it.

use super::{column, connect, database, dump_and_restore, BANDED};

#[test]
#[ignore = "needs the installed extension; scripts/test.sh runs it"]
fn manual_inputs_overrides_and_audit_survive_dump_and_restore() {
    let mut c = database("hs_csm_dump_src");
    c.batch_execute(&format!(
        "SET client_min_messages = warning;
         SELECT health_score.set_model('m', '{BANDED}');
         CREATE TABLE accounts AS SELECT g AS id, 8 AS logins FROM generate_series(1, 3) g;
         SELECT health_score.set_manual_input('m', '1', 'logins', '2', 'usage report missed a workspace', '2030-01-01');
         SELECT health_score.set_manual_input('m', '2', 'logins', '1', 'first note');
         SELECT health_score.set_manual_input('m', '2', 'logins', '3', 'second note');
         SELECT health_score.set_band_override('m', '3', 'red', 'escalation');
         SELECT health_score.snapshot('m', 'accounts', 'id', '2026-01-01');"
    ))
    .unwrap();
    dump_and_restore("hs_csm_dump_src", "hs_csm_dump_dst");
    let mut r = connect("hs_csm_dump_dst");
    for query in [
        "SELECT format('%s %s %s %s %s %s', model, entity_key, input, value, reason, expires_at) FROM health_score.manual_inputs ORDER BY 1",
        "SELECT format('%s %s %s %s', model, entity_key, band, reason) FROM health_score.band_overrides ORDER BY 1",
        "SELECT format('%s %s %s %s %s %s %s', id, changed_by, kind, entity_key, old_value, new_value, reason) FROM health_score.manual_audit ORDER BY id",
        "SELECT format('%s %s %s %s', entity_key, score, band, manual) FROM health_score.manual_applied ORDER BY 1",
    ] {
        let before: Vec<String> = column(&mut c, query);
        assert!(!before.is_empty(), "{query}");
        assert_eq!(column::<String>(&mut r, query), before, "{query}");
    }
    // the restored database goes on: the audit numbers on, the manual inputs apply
    r.batch_execute(
        "SET client_min_messages = warning;
         SELECT health_score.clear_band_override('m', '3', 'resolved');
         SELECT health_score.snapshot('m', 'accounts', 'id', '2026-01-02');",
    )
    .unwrap();
    let after: Vec<String> = column(
        &mut r,
        "SELECT format('%s %s %s', id, kind, coalesce(new_value, '-')) FROM health_score.manual_audit WHERE id > 4 ORDER BY id",
    );
    assert_eq!(after, ["5 band -"]);
    // logins 2 and 3 of 10 instead of 8: scores 20 and 30 (red); 3 is green again without its override
    let bands: Vec<String> = column(
        &mut r,
        "SELECT entity_key || ' ' || round(score::numeric, 9)::float8 || ' ' || band FROM health_score.scores WHERE scored_at = '2026-01-02' ORDER BY 1",
    );
    assert_eq!(bands, ["1 20 red", "2 30 red", "3 80 green"]);
}
