-- A page of one author's posts (`WHERE author_id = $1 [AND id > $2] ORDER BY id LIMIT $3`) is a
-- range of this index read in order, whatever the table's size. It serves every query of the
-- index on (author_id) alone, which goes.
CREATE INDEX IF NOT EXISTS posts_author_id_id ON posts (author_id, id);
DROP INDEX IF EXISTS posts_author_id;
