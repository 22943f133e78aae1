-- The sender's account id; NULL for a guest's message (and every message from before accounts).
ALTER TABLE chat_messages ADD COLUMN user_id BIGINT;
