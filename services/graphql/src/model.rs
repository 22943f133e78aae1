//! A post as data: [`PostRow`], as the database and the page cache hold it, and [`ValidPost`],
//! what a client sent for one, checked.

/// A stored post (docs/contracts.md's Post resource), as the posts table holds it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PostRow {
    /// Its id.
    pub id: i64,
    /// Its title (1–300 characters).
    pub title: String,
    /// Its text (at most 100 000 characters), if any.
    pub content: Option<String>,
    /// The users-service id of its author.
    pub author_id: i64,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

/// The longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 300;
/// The longest content, in characters.
pub const MAX_CONTENT_CHARS: usize = 100_000;

/// A post's fields as a client sent them, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidPost {
    /// The title, trimmed.
    pub title: String,
    /// The content, as sent.
    pub content: Option<String>,
}

/// What is wrong with a post a client sent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PostInputError {
    /// Blank or over the limit.
    #[error("title must be 1 to {MAX_TITLE_CHARS} characters (got {0})")]
    Title(usize),
    /// Over the limit.
    #[error("content must be at most {MAX_CONTENT_CHARS} characters (got {0})")]
    Content(usize),
}

impl ValidPost {
    /// Checks a title and content.
    pub fn parse(title: &str, content: Option<String>) -> Result<Self, PostInputError> {
        let title = title.trim();
        let title_chars = title.chars().count();
        if title_chars == 0 || title_chars > MAX_TITLE_CHARS {
            return Err(PostInputError::Title(title_chars));
        }
        if let Some(content) = &content {
            let content_chars = content.chars().count();
            if content_chars > MAX_CONTENT_CHARS {
                return Err(PostInputError::Content(content_chars));
            }
        }
        Ok(Self {
            title: title.to_owned(),
            content,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_trimmed_and_bounded_in_characters() {
        assert_eq!(
            ValidPost::parse("  Hi  ", None).map(|post| post.title),
            Ok("Hi".to_owned())
        );
        assert_eq!(ValidPost::parse("   ", None), Err(PostInputError::Title(0)));
        let longest = "é".repeat(MAX_TITLE_CHARS);
        assert!(ValidPost::parse(&longest, None).is_ok());
        assert_eq!(
            ValidPost::parse(&format!("{longest}e"), None),
            Err(PostInputError::Title(301))
        );
    }

    #[test]
    fn content_is_bounded_in_characters() {
        let longest = "ü".repeat(MAX_CONTENT_CHARS);
        assert!(ValidPost::parse("t", Some(longest.clone())).is_ok());
        assert_eq!(
            ValidPost::parse("t", Some(format!("{longest}!"))),
            Err(PostInputError::Content(100_001))
        );
    }
}
