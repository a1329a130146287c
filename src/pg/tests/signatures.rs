// The `#[pg_test]`s of `src/pg/signatures.rs`, included into its `tests` module: each runs in its own
// transaction inside a real PostgreSQL.

use pgrx::prelude::*;

#[pg_test]
fn c_functions_are_declared_as_the_library_reads_them() {
    use crate::pg::signatures::DECLARED;
    Spi::run("SET LOCAL search_path = public").unwrap();
    let declared: Vec<String> = Spi::connect(|client| {
        client
            .select(
                "SELECT format('%s(%s) -> %s%s%s', p.prosrc,
                               coalesce((SELECT string_agg(format_type(t, NULL), ', ' ORDER BY o)
                                           FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY u(t, o)), ''),
                               format_type(p.prorettype, NULL),
                               CASE WHEN p.proisstrict THEN ' strict' ELSE '' END,
                               CASE WHEN p.proretset THEN ' set' ELSE '' END)
                   FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
                  WHERE l.lanname = 'c' AND p.probin = '$libdir/health_score'
                    AND p.pronamespace IN ('health_score'::regnamespace, 'health_score_internal'::regnamespace)
                  ORDER BY 1",
                None,
                &[],
            )
            .unwrap()
            .map(|row| row.get::<String>(1).unwrap().unwrap())
            .collect()
    });
    let mut expected: Vec<String> = DECLARED
        .iter()
        .map(|d| {
            format!(
                "{}({}) -> {}{}{}",
                d.symbol,
                d.args.join(", "),
                d.returns,
                if d.strict { " strict" } else { "" },
                if d.set { " set" } else { "" }
            )
        })
        .collect();
    expected.sort();
    let missing: Vec<&String> = expected.iter().filter(|e| !declared.contains(e)).collect();
    let unlisted: Vec<&String> = declared.iter().filter(|d| !expected.contains(d)).collect();
    assert!(
        missing.is_empty() && unlisted.is_empty(),
        "src/pg/signatures.rs and the SQL disagree:\nlisted, not declared so: {missing:#?}\ndeclared, not listed so: {unlisted:#?}"
    );
    assert_eq!(declared.len(), DECLARED.len());
}

#[pg_test]
fn functions_returning_rows_declare_the_columns_the_library_writes() {
    use crate::pg::signatures::RESULT_COLUMNS;
    Spi::run("SET LOCAL search_path = public").unwrap();
    let declared: Vec<(String, String)> = Spi::connect(|client| {
        client
            .select(
                "SELECT p.prosrc,
                        (SELECT string_agg(format('%s %s', n, format_type(t, NULL)), ', ' ORDER BY o)
                           FROM unnest(p.proallargtypes::oid[], p.proargmodes::text[], p.proargnames)
                                WITH ORDINALITY u(t, m, n, o)
                          WHERE m = 't')
                   FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
                  WHERE l.lanname = 'c' AND p.probin = '$libdir/health_score' AND p.proretset
                    AND p.prorettype = 'record'::regtype
                    AND p.pronamespace IN ('health_score'::regnamespace, 'health_score_internal'::regnamespace)
                  ORDER BY p.prosrc COLLATE \"C\"",
                None,
                &[],
            )
            .unwrap()
            .map(|row| (row.get::<String>(1).unwrap().unwrap(), row.get::<String>(2).unwrap().unwrap_or_default()))
            .collect()
    });
    let expected = |symbol: &str| {
        RESULT_COLUMNS
            .iter()
            .find(|(s, _)| *s == symbol)
            .map(|(_, columns)| columns.iter().map(|(name, ty)| format!("{name} {ty}")).collect::<Vec<_>>().join(", "))
    };
    for (symbol, columns) in &declared {
        assert_eq!(Some(columns.clone()), expected(symbol), "the result columns of {symbol}");
    }
    // every form of explain, and each listed function, is declared
    let mut symbols: Vec<&str> = declared.iter().map(|(s, _)| s.as_str()).collect();
    symbols.dedup();
    let listed: Vec<&str> = RESULT_COLUMNS.iter().map(|(s, _)| *s).collect();
    assert_eq!(symbols, listed);
    // (four forms, the two columns forms, the two entity forms)
    assert_eq!(declared.iter().filter(|(s, _)| s.starts_with("hs_explain")).count(), 8);
}
