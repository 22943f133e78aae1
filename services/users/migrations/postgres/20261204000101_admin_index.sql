-- The admins, found by index at start (whether one exists) however many users there are.
CREATE INDEX IF NOT EXISTS users_admins ON users (id) WHERE role = 'admin';
