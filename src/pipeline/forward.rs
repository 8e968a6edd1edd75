//! Forwarded mail (SPEC B6, B7): when a colleague forwards a customer's email to the
//! inbox, the conversation belongs to the customer. A subject with a forward prefix
//! (`Fwd:`, `FW:`, `WG:`, `TR:`, `VS:`, `Doorst:`, …) sends us looking in the plain text
//! for the forwarded header block that Gmail, Outlook, Apple Mail and Thunderbird write
//! (in their common translations), and we take the original sender and CC from it.
//! Pure; a block we cannot read leaves the message with its forwarder.

use super::parse::Mailbox;

/// What the forwarded header block says about the original message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    pub sender: Mailbox,
    /// The original message's CC (B7: not the addresses added when forwarding).
    pub cc: Vec<Mailbox>,
}

/// Looks for the original sender when `subject` says the message is a forward.
pub fn detect(subject: &str, text: &str) -> Option<Forwarded> {
    if !has_forward_prefix(subject) {
        return None;
    }
    let lines: Vec<&str> = text.lines().map(unquote).collect();
    let start = marker_line(&lines).map_or(0, |i| i + 1);
    header_block(&lines[start.min(lines.len())..], start > 0)
}

const FORWARD_PREFIXES: &[&str] = &[
    "fw", "fwd", "wg", "tr", "vs", "doorst", "rv", "i", "enc", "vb", "vl", "pd", "rif",
];
const REPLY_PREFIXES: &[&str] = &["re", "aw", "sv", "antw", "ref", "r", "res", "odp"];

/// `Fwd: …`, `RE: FW: …`, `[Ticket 12] WG: …`; case-insensitive.
pub fn has_forward_prefix(subject: &str) -> bool {
    let mut rest = subject.trim_start();
    for _ in 0..10 {
        if let Some(after_tag) = rest.strip_prefix('[').and_then(|r| r.split_once(']')) {
            rest = after_tag.1.trim_start();
            continue;
        }
        let Some((word, after)) = rest.split_once(':') else {
            return false;
        };
        let word = word.trim().to_lowercase();
        if FORWARD_PREFIXES.contains(&word.as_str()) {
            return true;
        }
        if !REPLY_PREFIXES.contains(&word.as_str()) {
            return false;
        }
        rest = after.trim_start();
    }
    false
}

/// A line without its `>` quoting and surrounding blanks.
fn unquote(line: &str) -> &str {
    line.trim_start_matches(|c: char| c == '>' || c.is_whitespace())
        .trim_end()
}

/// Lines that open a forwarded message, lower case, matched anywhere in the line.
const MARKERS: &[&str] = &[
    "forwarded message",       // Gmail, Thunderbird
    "begin forwarded message", // Apple Mail
    "original message",        // Outlook
    "doorgestuurd bericht",
    "oorspronkelijk bericht",
    "weitergeleitete nachricht",
    "ursprüngliche nachricht",
    "vidarebefordrat meddelande",
    "vidarebefordrat brev",
    "ursprungligt meddelande",
    "message transféré",
    "message d'origine",
    "mensaje reenviado",
    "mensaje original",
    "messaggio inoltrato",
    "messaggio originale",
    "videresendt melding",
    "videresendt meddelelse",
    "välitetty viesti",
];

fn marker_line(lines: &[&str]) -> Option<usize> {
    lines.iter().position(|line| {
        let lower = line.to_lowercase();
        MARKERS.iter().any(|m| lower.contains(m)) && lower.len() < 120
    })
}

const FROM_LABELS: &[&str] = &["from", "van", "von", "från", "de", "da", "fra", "lähettäjä"];
const CC_LABELS: &[&str] = &["cc", "kopie", "kopia", "copie", "copia", "kopio"];
/// Labels that show an Outlook header block when there is no marker line.
const SENT_LABELS: &[&str] = &[
    "sent",
    "date",
    "verzonden",
    "gesendet",
    "datum",
    "skickat",
    "envoyé",
    "enviado",
    "inviato",
    "sendt",
    "lähetetty",
];

/// The first `Label: value` block in `lines` that names a sender. Without a marker
/// line, the block must also carry a sent/date label (Outlook's bare header block), so
/// a stray "From:" in a customer's prose is not taken for one.
fn header_block(lines: &[&str], after_marker: bool) -> Option<Forwarded> {
    let limit = if after_marker { 8 } else { lines.len() };
    let first = lines.iter().take(limit).position(|l| {
        label_value(l).is_some_and(|(label, _)| FROM_LABELS.contains(&label.as_str()))
    })?;
    // Thunderbird puts Subject and Date before From: the block starts at the first label.
    let mut start = first;
    while start > 0 && label_value(lines[start - 1]).is_some() {
        start -= 1;
    }
    let fields = fields(&lines[start..]);
    if !after_marker
        && !fields
            .iter()
            .any(|(l, _)| SENT_LABELS.contains(&l.as_str()))
    {
        return None;
    }
    let from = fields
        .iter()
        .find(|(l, _)| FROM_LABELS.contains(&l.as_str()))?;
    let sender = mailboxes(&from.1).into_iter().next()?;
    let cc = fields
        .iter()
        .filter(|(l, _)| CC_LABELS.contains(&l.as_str()))
        .flat_map(|(_, v)| mailboxes(v))
        .collect();
    Some(Forwarded { sender, cc })
}

/// `Label: value` lines up to the first blank line; a line without a label continues
/// the value before it (clients wrap long To and CC lists).
fn fields(lines: &[&str]) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in lines.iter().take(30) {
        if line.is_empty() {
            break;
        }
        match (label_value(line), fields.last_mut()) {
            (Some((label, value)), _) => fields.push((label, value.to_string())),
            (None, Some((_, value))) => {
                value.push(' ');
                value.push_str(line);
            }
            (None, None) => break,
        }
    }
    fields
}

/// `From: x` → ("from", "x"); also `De :` (French spacing) and `*From:*` (bold in
/// plain-text renderings of Outlook mail).
fn label_value(line: &str) -> Option<(String, &str)> {
    let line = line.trim_start_matches('*');
    let (label, value) = line.split_once(':')?;
    let label = label.trim().trim_end_matches('*').trim().to_lowercase();
    let known = FROM_LABELS
        .iter()
        .chain(CC_LABELS)
        .chain(SENT_LABELS)
        .chain(OTHER_LABELS)
        .any(|l| *l == label);
    known.then(|| (label, value.trim_start_matches('*').trim()))
}

const OTHER_LABELS: &[&str] = &[
    "to",
    "subject",
    "aan",
    "onderwerp",
    "an",
    "betreff",
    "till",
    "ämne",
    "à",
    "objet",
    "para",
    "asunto",
    "a",
    "oggetto",
    "til",
    "emne",
    "reply-to",
    "vastaanottaja",
    "aihe",
];

/// The mailboxes of a header-like value: `Name <addr>`, `"Name" <addr>`,
/// `Name [mailto:addr]`, `addr`, separated by `,` or `;`.
fn mailboxes(value: &str) -> Vec<Mailbox> {
    split_list(value)
        .into_iter()
        .filter_map(|item| mailbox(&item))
        .collect()
}

fn split_list(value: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut depth = 0i32;
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => quoted = !quoted,
            '<' | '[' | '(' => depth += 1,
            '>' | ']' | ')' => depth -= 1,
            ',' | ';' if depth <= 0 && !quoted => {
                items.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    items.push(current);
    items
}

fn mailbox(item: &str) -> Option<Mailbox> {
    let item = item.trim();
    let (name, address) = match bracketed(item) {
        Some((start, address)) => (item[..start].trim(), address),
        None => ("", item.split_whitespace().find(|w| w.contains('@'))?),
    };
    let address = address
        .trim()
        .trim_start_matches("mailto:")
        .trim_matches(|c: char| c == '<' || c == '>' || c == '"' || c == '\'')
        .to_lowercase();
    let valid = address.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !address.contains(char::is_whitespace)
    });
    if !valid {
        return None;
    }
    let name = name.trim_matches(|c: char| c == '"' || c == '\'' || c.is_whitespace());
    Some(Mailbox {
        name: (!name.is_empty() && !name.eq_ignore_ascii_case(&address)).then(|| name.to_string()),
        address,
    })
}

/// The address in `<…>` or `[mailto:…]`, with where the brackets start.
fn bracketed(item: &str) -> Option<(usize, &str)> {
    for (open, close) in [('<', '>'), ('[', ']')] {
        if let Some(start) = item.rfind(open) {
            let inner = &item[start + 1..];
            let end = inner.find(close).unwrap_or(inner.len());
            if inner[..end].contains('@') {
                return Some((start, &inner[..end]));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sender(subject: &str, text: &str) -> Option<(String, Option<String>, Vec<String>)> {
        detect(subject, text).map(|f| {
            (
                f.sender.address,
                f.sender.name,
                f.cc.into_iter().map(|m| m.address).collect(),
            )
        })
    }

    #[test]
    fn forward_prefixes_in_many_languages() {
        for s in [
            "Fwd: x",
            "FW: x",
            "fw: x",
            "WG: x",
            "TR: x",
            "VS: x",
            "Doorst: x",
            "RV: x",
            "I: x",
            "Re: Fwd: x",
            "AW: WG: x",
            "[#12] Fwd: x",
            "Fwd : x",
        ] {
            assert!(has_forward_prefix(s), "{s}");
        }
        for s in [
            "Re: x",
            "x",
            "Fwd x",
            "Information: x",
            "Idea: forward this",
            "",
        ] {
            assert!(!has_forward_prefix(s), "{s}");
        }
    }

    /// Subject, body, expected sender address, name and CC addresses.
    type Case<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, &'a [&'a str]);

    #[test]
    fn every_client_block_gives_the_original_sender_and_cc() {
        let cases: &[Case] = &[
            // Gmail
            ("Fwd: Order", "Hi team\n\n---------- Forwarded message ---------\nFrom: Anna Berg <anna@cust.example>\nDate: Mon, 10 Mar 2025 at 16:40\nSubject: Order\nTo: Jan <jan@shop.example>\nCc: Lotte <lotte@cust.example>, piet@cust.example\n\nHello\n", "anna@cust.example", Some("Anna Berg"), &["lotte@cust.example", "piet@cust.example"]),
            // Outlook with a separator line and mailto brackets
            ("FW: Order", "See below\n\n________________________________\nFrom: Anna Berg [mailto:anna@cust.example]\nSent: Monday, March 10, 2025 4:40 PM\nTo: Jan <jan@shop.example>\nCc: Lotte Visser <lotte@cust.example>; Piet <piet@cust.example>\nSubject: Order\n\nHello\n", "anna@cust.example", Some("Anna Berg"), &["lotte@cust.example", "piet@cust.example"]),
            // Outlook, "-----Original Message-----"
            ("FW: Order", "-----Original Message-----\nFrom: anna@cust.example\nSent: 10 March 2025 16:40\nTo: jan@shop.example\nSubject: Order\n\nHello\n", "anna@cust.example", None, &[]),
            // Apple Mail
            ("Fwd: Order", "Sent from my iPhone\n\nBegin forwarded message:\n\n> From: \"Anna Berg\" <anna@cust.example>\n> Subject: Order\n> Date: 10 March 2025 at 16:40:00 CET\n> To: jan@shop.example\n> Cc: lotte@cust.example\n\n> Hello\n", "anna@cust.example", Some("Anna Berg"), &["lotte@cust.example"]),
            // Thunderbird: Subject and Date come before From
            ("Fwd: Order", "\n\n-------- Forwarded Message --------\nSubject: \tOrder\nDate: \tMon, 10 Mar 2025 16:40:00 +0100\nFrom: \tAnna Berg <anna@cust.example>\nTo: \tjan@shop.example\nCC: \tLotte <lotte@cust.example>\n\nHello\n", "anna@cust.example", Some("Anna Berg"), &["lotte@cust.example"]),
            // Outlook in Dutch
            ("Doorst: Bestelling", "Zie onder\n\nVan: Anna Berg <anna@cust.example>\nVerzonden: maandag 10 maart 2025 16:40\nAan: Jan <jan@shop.example>\nCC: Lotte <lotte@cust.example>\nOnderwerp: Bestelling\n\nHallo\n", "anna@cust.example", Some("Anna Berg"), &["lotte@cust.example"]),
            // Gmail in German
            ("WG: Bestellung", "---------- Weitergeleitete Nachricht ---------\nVon: Anna Berg <anna@cust.example>\nDate: Mo., 10. März 2025 um 16:40 Uhr\nSubject: Bestellung\nTo: <jan@shop.example>\n\nHallo\n", "anna@cust.example", Some("Anna Berg"), &[]),
            // Thunderbird in Swedish
            ("VB: Beställning", "-------- Vidarebefordrat meddelande --------\nÄmne: Beställning\nDatum: Mon, 10 Mar 2025 16:40:00 +0100\nFrån: Anna Berg <anna@cust.example>\nTill: jan@shop.example\nKopia: lotte@cust.example\n\nHej\n", "anna@cust.example", Some("Anna Berg"), &["lotte@cust.example"]),
            // French Outlook spacing
            ("TR: Commande", "De : Anna Berg <anna@cust.example>\nEnvoyé : lundi 10 mars 2025 16:40\nÀ : jan@shop.example\nCc : lotte@cust.example\nObjet : Commande\n\nBonjour\n", "anna@cust.example", Some("Anna Berg"), &["lotte@cust.example"]),
        ];
        for (subject, text, address, name, cc) in cases {
            let got =
                sender(subject, text).unwrap_or_else(|| panic!("{subject}: no sender in {text:?}"));
            assert_eq!(got.0, *address, "{subject}");
            assert_eq!(got.1.as_deref(), *name, "{subject}");
            assert_eq!(
                got.2,
                cc.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                "{subject}: {text}"
            );
        }
    }

    #[test]
    fn no_block_or_no_prefix_leaves_the_forwarder() {
        // A forward prefix without a readable block.
        assert_eq!(
            sender("Fwd: x", "just some text\nFrom: me, with love\n"),
            None
        );
        assert_eq!(
            sender(
                "Fwd: x",
                "---------- Forwarded message ---------\nFrom: nobody\n"
            ),
            None
        );
        // A quoted header block in a reply is not a forward.
        assert_eq!(
            sender("Re: x", "From: Anna <anna@cust.example>\nSent: today\n"),
            None
        );
        // Prose mentioning From: without a sent line.
        assert_eq!(
            sender("Fwd: x", "From: Anna <anna@cust.example> I got this\n"),
            None
        );
        assert_eq!(sender("Fwd: x", ""), None);
    }
}
