package tracer

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// sqliteSchemaV2 is the schema of version 2 as it was released: the table
// of version 3 with an index on (topic) alone. Kept so that the migration
// test starts from a real version-2 file and BenchmarkSQLiteWrite compares
// the write cost of both index sets in one run.
const sqliteSchemaV2 = `
CREATE TABLE IF NOT EXISTS events (
	ts           INTEGER NOT NULL,
	id           BLOB    NOT NULL,
	type         TEXT    NOT NULL,
	uid          TEXT    NOT NULL,
	message_id   TEXT    NOT NULL,
	topic        TEXT    NOT NULL,
	key          TEXT    NOT NULL,
	tags         TEXT    NOT NULL,
	app          TEXT    NOT NULL,
	client_ip    TEXT    NOT NULL,
	node         TEXT    NOT NULL,
	cluster      TEXT    NOT NULL,
	subscription TEXT    NOT NULL,
	consumer     TEXT    NOT NULL,
	latency_ns   INTEGER NOT NULL,
	error        TEXT    NOT NULL,
	attempt      INTEGER NOT NULL,
	properties   TEXT    NOT NULL,
	PRIMARY KEY (ts, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_uid        ON events (uid);
CREATE INDEX IF NOT EXISTS events_message_id ON events (message_id) WHERE message_id <> '';
CREATE INDEX IF NOT EXISTS events_key        ON events (key) WHERE key <> '';
CREATE INDEX IF NOT EXISTS events_topic      ON events (topic);
PRAGMA user_version = 2;
`

// createSQLiteV2 is openSQLite's schema step for a version-2 store: the
// current write path on the old index set.
func createSQLiteV2(ctx context.Context, db *sql.DB) error {
	_, err := db.ExecContext(ctx, sqliteSchemaV2)
	return err
}

func openSQLiteV2(ctx context.Context, path string) (*SQLite, error) {
	return openSQLite(ctx, path, createSQLiteV2)
}

func sqliteIndexes(t *testing.T, s *SQLite) []string {
	t.Helper()
	rows, err := s.db.QueryContext(context.Background(),
		`SELECT name || ' ' || sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'events' ORDER BY name`)
	require.NoError(t, err)
	defer func() { _ = rows.Close() }()
	var out []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, s)
	}
	require.NoError(t, rows.Err())
	return out
}

// TestSQLiteMigratesV2 opens a store written with the version-2 schema:
// the topic index is rebuilt with the uid, every event is still there, and
// the grouped search answers as before.
func TestSQLiteMigratesV2(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "trace.db")
	old, err := openSQLiteV2(ctx, path)
	require.NoError(t, err)
	var evs []Event
	for m := range 2000 {
		evs = append(evs, consoleBenchEvents(m)...)
	}
	require.NoError(t, old.Write(ctx, evs))
	require.Contains(t, strings.Join(sqliteIndexes(t, old), "\n"), "events_topic CREATE INDEX events_topic      ON events (topic)")
	q := MessageQuery{Query: Query{Topic: "persistent://billing/pay/topic-3",
		Range: TimeRange{From: consoleBenchStart.Add(10 * time.Second), To: consoleBenchStart.Add(100 * time.Second)}}}
	before, err := old.SearchMessages(ctx, q, Page{Limit: 50})
	require.NoError(t, err)
	require.Len(t, before.Rows, 50)
	require.NotEmpty(t, before.Next)
	require.NoError(t, old.Close())

	s, err := OpenSQLite(ctx, path)
	require.NoError(t, err)
	var version, n int
	require.NoError(t, s.db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version))
	require.Equal(t, sqliteSchemaVersion, version)
	idx := strings.Join(sqliteIndexes(t, s), "\n")
	require.NotContains(t, idx, "events_topic ")
	require.Contains(t, idx, "events_topic_uid CREATE INDEX events_topic_uid  ON events (topic, ts, id, uid)")
	require.NoError(t, s.db.QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&n))
	require.Equal(t, len(evs), n)
	var check string
	require.NoError(t, s.db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&check))
	require.Equal(t, "ok", check)

	after, err := s.SearchMessages(ctx, q, Page{Limit: 50})
	require.NoError(t, err)
	require.Equal(t, before, after)
	// The next page follows on from the same cursor.
	next, err := s.SearchMessages(ctx, q, Page{Limit: 50, Cursor: before.Next})
	require.NoError(t, err)
	require.NotEmpty(t, next.Rows)
	require.Greater(t, next.Rows[0].UID, before.Rows[49].UID)
	res, err := s.ByTopic(ctx, q.Topic, q.Range, Page{Limit: 1000})
	require.NoError(t, err)
	require.NotEmpty(t, res.Events)
	for i := 1; i < len(res.Events); i++ {
		a, b := res.Events[i-1], res.Events[i]
		require.True(t, a.Time.Before(b.Time) || a.Time.Equal(b.Time) && a.ID < b.ID, "ByTopic out of order at %d", i)
	}
	require.NoError(t, s.Close())

	// Opening it again changes nothing.
	s, err = OpenSQLite(ctx, path)
	require.NoError(t, err)
	require.Equal(t, idx, strings.Join(sqliteIndexes(t, s), "\n"))
	require.NoError(t, s.Close())
}

// TestSQLiteQueryPlans pins the plans the console's questions rely on: the
// grouped search reads the uids of a topic's window from the covering
// index (no table lookups), the page's events come from the uid index
// without a sort, and ByTopic still needs no sort.
func TestSQLiteQueryPlans(t *testing.T) {
	ctx := context.Background()
	s, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "trace.db"))
	require.NoError(t, err)
	defer func() { _ = s.Close() }()
	var evs []Event
	for m := range 500 {
		evs = append(evs, consoleBenchEvents(m)...)
	}
	require.NoError(t, s.Write(ctx, evs))
	plan := func(query string, args ...any) string {
		t.Helper()
		rows, err := s.db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+query, args...)
		require.NoError(t, err)
		defer func() { _ = rows.Close() }()
		var lines []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			require.NoError(t, rows.Scan(&id, &parent, &notused, &detail))
			lines = append(lines, detail)
		}
		require.NoError(t, rows.Err())
		return strings.Join(lines, "\n")
	}
	window := TimeRange{From: consoleBenchStart, To: consoleBenchStart.Add(10 * time.Minute)}

	query, args := uidsAfterSQL(&Query{Topic: "persistent://billing/pay/topic-1", Range: window}, "", 101)
	got := plan(query, args...)
	require.Contains(t, got, "SEARCH events USING COVERING INDEX events_topic_uid (topic=? AND ts>? AND ts<?)")
	require.NotContains(t, got, "SCAN")
	query, args = uidsAfterSQL(&Query{Topic: "persistent://billing/pay/topic-1"}, "", 101)
	got = plan(query, args...)
	require.Contains(t, got, "SEARCH events USING COVERING INDEX events_topic_uid (topic=?)")

	uids := make([]any, 101)
	for i := range uids {
		uids[i] = consoleBenchUID(i)
	}
	got = plan(eventsOfSQL(len(uids)), uids...)
	require.Contains(t, got, "SEARCH events USING INDEX events_uid (uid=?)")
	require.NotContains(t, got, "TEMP B-TREE")

	got = plan(`SELECT `+sqliteColumns+` FROM events WHERE topic = ? AND ts >= ? AND ts < ? ORDER BY ts, id LIMIT ?`,
		"persistent://billing/pay/topic-1", window.From.UnixMicro(), window.To.UnixMicro(), 101)
	require.Contains(t, got, "SEARCH events USING INDEX events_topic_uid (topic=? AND ts>? AND ts<?)")
	require.NotContains(t, got, "TEMP B-TREE")
}
