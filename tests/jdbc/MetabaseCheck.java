// What a BI tool such as Metabase does over JDBC, with the real PostgreSQL driver: sync the
// schema's views and their columns through DatabaseMetaData (as Metabase's sync does), then
// run a dashboard's queries. It prints what it saw, one fact a line, for tests/cluster.rs to
// check against values computed in the database directly.
//
//   java -Duser.timezone=UTC -cp /usr/share/java/postgresql.jar tests/jdbc/MetabaseCheck.java \
//        URL USER VIEW_SCHEMA VIEW_NAME MODEL
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.util.Properties;

public class MetabaseCheck {
    public static void main(String[] args) throws Exception {
        String url = args[0], user = args[1], viewSchema = args[2], viewName = args[3];
        Properties props = new Properties();
        props.setProperty("user", user);
        try (Connection c = DriverManager.getConnection(url, props)) {
            DatabaseMetaData meta = c.getMetaData();
            String[] types = {"TABLE", "PARTITIONED TABLE", "VIEW", "FOREIGN TABLE", "MATERIALIZED VIEW"};
            for (String schema : new String[] {"health_score", viewSchema}) {
                try (ResultSet t = meta.getTables(null, schema, "%", types)) {
                    while (t.next()) {
                        String table = t.getString("TABLE_NAME");
                        System.out.println("TABLE\t" + schema + "." + table + "\t" + t.getString("TABLE_TYPE")
                                + "\t" + (t.getString("REMARKS") != null && !t.getString("REMARKS").isEmpty()));
                        try (ResultSet col = meta.getColumns(null, schema, table, "%")) {
                            while (col.next()) {
                                String remarks = col.getString("REMARKS");
                                System.out.println("COLUMN\t" + schema + "." + table + "." + col.getString("COLUMN_NAME")
                                        + "\t" + col.getString("TYPE_NAME") + "\t" + (remarks != null && !remarks.isEmpty()));
                            }
                        }
                    }
                }
            }
            String view = "\"" + viewSchema.replace("\"", "\"\"") + "\".\"" + viewName.replace("\"", "\"\"") + "\"";
            // accounts by band per plan, a source column the view carries
            try (PreparedStatement q = c.prepareStatement(
                    "SELECT plan, band, count(*) FROM " + view + " GROUP BY 1, 2 ORDER BY 1, 2");
                 ResultSet r = q.executeQuery()) {
                while (r.next()) {
                    System.out.println("BANDS\t" + r.getString(1) + "\t" + r.getString(2) + "\t" + r.getLong(3));
                }
            }
            // the at-risk list
            try (PreparedStatement q = c.prepareStatement(
                    "SELECT * FROM " + view + " WHERE band = ? ORDER BY score, 1 LIMIT 10")) {
                q.setString(1, "red");
                try (ResultSet r = q.executeQuery()) {
                    while (r.next()) {
                        System.out.println("ATRISK\t" + r.getString(1) + "\t" + r.getDouble("score"));
                    }
                }
            }
            // average score per week, from history
            try (PreparedStatement q = c.prepareStatement(
                    "SELECT date_trunc('week', scored_at) AS week, avg(score) FROM health_score.history"
                            + " WHERE model = ? GROUP BY 1 ORDER BY 1")) {
                q.setString(1, args.length > 4 ? args[4] : "churn");
                try (ResultSet r = q.executeQuery()) {
                    while (r.next()) {
                        System.out.println("WEEK\t" + r.getTimestamp(1).getTime() / 1000 + "\t" + r.getDouble(2));
                    }
                }
            }
        }
    }
}
