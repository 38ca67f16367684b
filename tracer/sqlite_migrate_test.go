package tracer

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSQLiteMigratesV1 opens a store written with the version-1 schema and
// finds every event, answering the same queries, with the version-2 one.
func TestSQLiteMigratesV1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "trace.db")
	old, err := openSQLiteV1(ctx, path)
	require.NoError(t, err)
	evs := make([]Event, 300)
	for i := range evs {
		evs[i] = benchEvent(i)
		if i%2 == 0 {
			evs[i].MessageID = "" // accepted-like: no broker id
		}
		evs[i].ID = ComputeID(&evs[i])
	}
	require.NoError(t, old.Write(ctx, evs))
	// A row no pipeline could have written (its id is not ComputeID's hex)
	// is left behind by the migration.
	_, err = old.db.ExecContext(ctx, `INSERT INTO events (`+sqliteColumnsV1+`) VALUES ('not-hex','accepted','u-bad','','','','','','','','','','',1,0,'',0,'')`)
	require.NoError(t, err)
	require.NoError(t, old.Close())

	s, err := OpenSQLite(ctx, path)
	require.NoError(t, err)
	var version, n int
	require.NoError(t, s.db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version))
	require.Equal(t, sqliteSchemaVersion, version)
	require.NoError(t, s.db.QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&n))
	require.Equal(t, len(evs), n)

	for _, i := range []int{0, 1, 150, 299} {
		res, err := s.ByUID(ctx, evs[i].UID, Page{})
		require.NoError(t, err)
		require.Len(t, res.Events, 1)
		got := res.Events[0]
		require.Equal(t, evs[i].ID, got.ID)
		require.True(t, evs[i].Time.Equal(got.Time))
		require.Equal(t, evs[i].Tags, got.Tags)
	}
	res, err := s.ByMessageID(ctx, evs[1].MessageID, Page{})
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	res, err = s.ByTopic(ctx, evs[0].Topic, TimeRange{}, Page{Limit: 1000})
	require.NoError(t, err)
	require.Len(t, res.Events, len(evs))

	// Written again after the migration: still one copy each.
	require.NoError(t, s.Write(ctx, evs))
	require.NoError(t, s.db.QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&n))
	require.Equal(t, len(evs), n)
	require.NoError(t, s.Close())

	// Opening a migrated store again changes nothing.
	s, err = OpenSQLite(ctx, path)
	require.NoError(t, err)
	require.NoError(t, s.db.QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&n))
	require.Equal(t, len(evs), n)
	require.NoError(t, s.Close())
}

// TestSQLiteRefusesNewerSchema: a file from a later version is not misread.
func TestSQLiteRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "trace.db")
	s, err := OpenSQLite(ctx, path)
	require.NoError(t, err)
	_, err = s.db.ExecContext(ctx, `PRAGMA user_version = 99`)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = OpenSQLite(ctx, path)
	require.ErrorContains(t, err, "newer")
}

// TestSQLiteRejectsForeignIDs: an id that is not ComputeID's form is a
// permanent item error; the rest of the batch is stored.
func TestSQLiteRejectsForeignIDs(t *testing.T) {
	ctx := context.Background()
	s, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "trace.db"))
	require.NoError(t, err)
	defer func() { _ = s.Close() }()
	good, bad := benchEvent(1), benchEvent(2)
	bad.ID = "ABCDEF0123456789ABCDEF0123456789" // uppercase: would sort differently
	err = s.Write(ctx, []Event{good, bad})
	var be *BatchError
	require.ErrorAs(t, err, &be)
	require.Len(t, be.Items, 1)
	require.Equal(t, 1, be.Items[0].Index)
	require.False(t, be.Items[0].Retriable)
	res, err := s.ByUID(ctx, good.UID, Page{})
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
}
