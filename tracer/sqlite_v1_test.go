package tracer

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// The version-1 SQLite schema and writer, as they were before schema
// version 2 (ADR 020): kept for the migration test and so that
// BenchmarkSQLiteWrite measures the old and the new layout in one run.
const sqliteSchemaV1 = `
CREATE TABLE IF NOT EXISTS events (
	seq          INTEGER PRIMARY KEY,
	id           TEXT    NOT NULL UNIQUE,
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
	ts           INTEGER NOT NULL,
	latency_ns   INTEGER NOT NULL,
	error        TEXT    NOT NULL,
	attempt      INTEGER NOT NULL,
	properties   TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS events_uid        ON events (uid, ts);
CREATE INDEX IF NOT EXISTS events_message_id ON events (message_id, ts);
CREATE INDEX IF NOT EXISTS events_key        ON events (key, ts);
CREATE INDEX IF NOT EXISTS events_topic_ts   ON events (topic, ts, id);
CREATE INDEX IF NOT EXISTS events_ts         ON events (ts);
`

const sqliteColumnsV1 = `id, type, uid, message_id, topic, key, tags, app, client_ip, node, cluster,
	subscription, consumer, ts, latency_ns, error, attempt, properties`

// sqliteV1 is the version-1 store's write path: the same pragmas, one
// write connection, a prepared 64-row INSERT OR IGNORE.
type sqliteV1 struct {
	db      *sql.DB
	wconn   *sql.Conn
	insertN *sql.Stmt
}

func openSQLiteV1(ctx context.Context, path string) (*sqliteV1, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "cache_size(-32768)")
	q.Add("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	if _, err := db.ExecContext(ctx, sqliteSchemaV1); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	wconn, err := db.Conn(ctx)
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	stmt, err := wconn.PrepareContext(ctx, insertSQLV1(sqliteInsertRows))
	if err != nil {
		return nil, errors.Join(err, wconn.Close(), db.Close())
	}
	return &sqliteV1{db: db, wconn: wconn, insertN: stmt}, nil
}

func insertSQLV1(rows int) string {
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", sqliteColumnCount), ",") + ")"
	return "INSERT OR IGNORE INTO events (" + sqliteColumnsV1 + ") VALUES " + strings.TrimSuffix(strings.Repeat(row+",", rows), ",")
}

func (s *sqliteV1) Close() error {
	return errors.Join(s.insertN.Close(), s.wconn.Close(), s.db.Close())
}

func (s *sqliteV1) Write(ctx context.Context, events []Event) error {
	tx, err := s.wconn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	args := make([]any, 0, sqliteInsertRows*sqliteColumnCount)
	rows := 0
	flush := func() error {
		if rows == 0 {
			return nil
		}
		var err error
		if rows == sqliteInsertRows {
			_, err = tx.StmtContext(ctx, s.insertN).ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, insertSQLV1(rows), args...)
		}
		args, rows = args[:0], 0
		return err
	}
	for i := range events {
		ev := &events[i]
		tags, props, err := encodeExtras(ev)
		if err != nil {
			return err
		}
		args = append(args, ev.ID, string(ev.Type), ev.UID, ev.MessageID, ev.Topic, ev.Key, tags,
			ev.App, ev.ClientIP, ev.Node, ev.Cluster, ev.Subscription, ev.Consumer,
			ev.Time.UnixMicro(), int64(ev.Latency), ev.Error, ev.Attempt, props)
		rows++
		if rows == sqliteInsertRows {
			if err := flush(); err != nil {
				return fmt.Errorf("v1 insert: %w", err)
			}
		}
	}
	if err := flush(); err != nil {
		return fmt.Errorf("v1 insert: %w", err)
	}
	return tx.Commit()
}
