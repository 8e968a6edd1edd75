//! Search documents and queries for PostgreSQL (placeholder until the tokenizer lands).

pub fn search_document(subject: &str, text: &str, sender: &str) -> String {
    format!("{subject} {text} {sender}").to_lowercase()
}

pub fn tsquery(input: &str) -> Option<String> {
    let words: Vec<String> = input
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| format!("'{}'", w.to_lowercase()))
        .collect();
    let mut q = words.join(" & ");
    if q.is_empty() {
        return None;
    }
    q.push_str(":*");
    Some(q)
}
