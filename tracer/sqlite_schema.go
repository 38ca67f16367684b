package tracer

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
)

// ErrBadID is the permanent item error of an event whose ID is set but is
// not what ComputeID makes (32 hex characters): the SQLite store keeps ids
// as 16-byte keys.
var ErrBadID = errors.New("tracer: event id is not 32 lowercase hex characters")

// idBytes turns an event id (ComputeID's hex) into the store's 16-byte key.
// Only lowercase is accepted, so that the key's byte order is the order of
// the hex strings, which cursors and Elasticsearch use.
func idBytes(id string) ([]byte, error) {
	if len(id) != 32 {
		return nil, ErrBadID
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return nil, ErrBadID
		}
	}
	b := make([]byte, 16)
	if _, err := hex.Decode(b, []byte(id)); err != nil {
		return nil, ErrBadID
	}
	return b, nil
}

// migrateSQLite brings the database to sqliteSchemaVersion: it creates the
// schema in an empty file, rewrites a version-1 table (rowid, text id) into
// the current one, or replaces version 2's topic index, each in one
// transaction. A database newer than this code is refused rather than
// misread.
func migrateSQLite(ctx context.Context, db *sql.DB) error {
	var version int
	if err := db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return fmt.Errorf("tracer: sqlite schema version: %w", err)
	}
	switch {
	case version == sqliteSchemaVersion:
		return nil
	case version > sqliteSchemaVersion:
		return fmt.Errorf("tracer: sqlite schema version %d is newer than this sidecar's %d", version, sqliteSchemaVersion)
	}
	var v1 int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('events') WHERE name = 'seq'`).Scan(&v1); err != nil {
		return fmt.Errorf("tracer: sqlite schema: %w", err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("tracer: sqlite schema: %w", err)
	}
	defer func() { _ = conn.Close() }()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("tracer: sqlite schema: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	steps := []string{sqliteSchema}
	switch {
	case version == 2:
		// The table is version 3's; only the topic index gains the uid.
		// Building it reads the whole table once.
		steps = []string{`DROP INDEX IF EXISTS events_topic`, sqliteSchema}
	case v1 > 0:
		steps = []string{
			`ALTER TABLE events RENAME TO events_v1`,
			`DROP INDEX IF EXISTS events_uid`,
			`DROP INDEX IF EXISTS events_message_id`,
			`DROP INDEX IF EXISTS events_key`,
			`DROP INDEX IF EXISTS events_topic_ts`,
			`DROP INDEX IF EXISTS events_ts`,
			sqliteSchema,
			// Rows whose id is not 32 hex characters cannot have come from
			// the pipeline (ComputeID); they are left out.
			`INSERT OR IGNORE INTO events (` + sqliteColumns + `)
			 SELECT ts, unhex(id), type, uid, message_id, topic, key, tags, app, client_ip, node, cluster,
			        subscription, consumer, latency_ns, error, attempt, properties
			 FROM events_v1 WHERE length(id) = 32 AND id NOT GLOB '*[^0-9a-f]*'`,
			`DROP TABLE events_v1`,
		}
	}
	steps = append(steps, fmt.Sprintf(`PRAGMA user_version = %d`, sqliteSchemaVersion))
	for _, q := range steps {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("tracer: sqlite schema migration: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("tracer: sqlite schema migration: %w", err)
	}
	return nil
}
