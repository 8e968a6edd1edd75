//! Every string of the web inbox, in one catalogue: English, Dutch and Swedish (the
//! seed articles' languages, with their words for views and actions). A user's
//! language is `[[users]] language` in the configuration; English by default. The
//! sign-in page, before the user is known, follows the browser's `Accept-Language`.

/// A language of the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Nl,
    Sv,
}

impl Lang {
    pub const ALL: [Lang; 3] = [Lang::En, Lang::Nl, Lang::Sv];

    /// The configured code (`en`, `nl`, `sv`); anything else is English.
    pub fn from_code(code: &str) -> Lang {
        match code {
            "nl" => Lang::Nl,
            "sv" => Lang::Sv,
            _ => Lang::En,
        }
    }

    /// The language a browser asks for first (`Accept-Language`, by `q`) among those
    /// of the catalogue: the sign-in page's, before the user is known. English when it
    /// asks for none of them.
    pub fn from_accept_language(header: &str) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or_default().trim();
            let primary = tag
                .split('-')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            let Some(lang) = Lang::ALL.into_iter().find(|l| l.code() == primary) else {
                continue;
            };
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::En, |(_, lang)| lang)
    }

    /// [`Lang::from_accept_language`] of a request's headers.
    pub fn of_browser(headers: &axum::http::HeaderMap) -> Lang {
        headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .map_or(Lang::En, Lang::from_accept_language)
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Nl => "nl",
            Lang::Sv => "sv",
        }
    }

    /// The text of `key` in this language; the key itself when the catalogue lacks it
    /// (a test keeps every key used in the catalogue).
    pub fn t(self, key: &'static str) -> &'static str {
        CATALOGUE
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, texts)| match self {
                Lang::En => texts[0],
                Lang::Nl => texts[1],
                Lang::Sv => texts[2],
            })
            .unwrap_or(key)
    }
}

/// key → [English, Dutch, Swedish].
pub const CATALOGUE: &[(&str, [&str; 3])] = &[
    // sign-in
    ("sign_in.title", ["Sign in", "Inloggen", "Logga in"]),
    ("sign_in.email", ["Email", "E-mailadres", "E-postadress"]),
    ("sign_in.password", ["Password", "Wachtwoord", "Lösenord"]),
    ("sign_in.button", ["Sign in", "Inloggen", "Logga in"]),
    (
        "sign_in.wrong",
        [
            "Wrong email or password.",
            "Onjuist e-mailadres of wachtwoord.",
            "Fel e-postadress eller lösenord.",
        ],
    ),
    (
        "sign_in.limited",
        [
            "Too many failed sign-ins. Try again in a few minutes.",
            "Te veel mislukte pogingen. Probeer het over een paar minuten opnieuw.",
            "För många misslyckade inloggningar. Försök igen om några minuter.",
        ],
    ),
    ("sign_out", ["Sign out", "Uitloggen", "Logga ut"]),
    // views (SPEC F1)
    (
        "view.unassigned",
        ["Unassigned", "Niet toegewezen", "Ej tilldelade"],
    ),
    (
        "view.assigned_to_me",
        [
            "Assigned to me",
            "Toegewezen aan mij",
            "Tilldelade till mig",
        ],
    ),
    ("view.all_open", ["All open", "Alles open", "Alla öppna"]),
    ("view.email", ["Email", "E-mail", "E-post"]),
    ("view.closed", ["Closed", "Gesloten", "Stängda"]),
    ("view.sent", ["Sent", "Verzonden", "Skickade"]),
    ("view.spam", ["Spam", "Spam", "Skräppost"]),
    ("view.filtered", ["Filtered", "Gefilterd", "Filtrerade"]),
    ("view.trash", ["Trash", "Prullenbak", "Papperskorg"]),
    ("views", ["Views", "Weergaven", "Vyer"]),
    ("more", ["More", "Meer", "Mer"]),
    ("inbox", ["Inbox", "Inbox", "Inkorg"]),
    (
        "all_inboxes",
        ["All inboxes", "Alle inboxen", "Alla inkorgar"],
    ),
    ("switch", ["Switch", "Wisselen", "Byt"]),
    ("availability", ["Availability", "Beschikbaarheid", "Tillgänglighet"]),
    ("available", ["Available", "Beschikbaar", "Tillgänglig"]),
    ("away", ["Away", "Afwezig", "Borta"]),
    // list
    ("search", ["Search", "Zoeken", "Sök"]),
    ("filters", ["Filters", "Filters", "Filter"]),
    ("filter.status", ["Status", "Status", "Status"]),
    ("filter.any", ["Any", "Alle", "Alla"]),
    ("filter.since", ["From date", "Vanaf datum", "Från datum"]),
    ("filter.until", ["Before date", "Tot datum", "Före datum"]),
    ("filter.hide_filtered", ["Hide filtered", "Gefilterd verbergen", "Dölj filtrerade"]),
    ("filter.hide_trash", ["Hide trash", "Prullenbak verbergen", "Dölj papperskorgen"]),
    (
        "leave_search",
        ["Leave search", "Zoeken verlaten", "Lämna sökningen"],
    ),
    ("sort", ["Sort", "Sorteren", "Sortera"]),
    (
        "sort.newest",
        ["Newest first", "Nieuwste eerst", "Nyaste först"],
    ),
    (
        "sort.oldest",
        ["Oldest first", "Oudste eerst", "Äldsta först"],
    ),
    ("apply", ["Apply", "Toepassen", "Använd"]),
    ("col.select", ["Select", "Selecteren", "Välj"]),
    ("col.contact", ["Contact", "Contact", "Kontakt"]),
    ("col.subject", ["Subject", "Onderwerp", "Ämne"]),
    ("col.time", ["Time", "Tijd", "Tid"]),
    ("col.assignee", ["Assignee", "Eigenaar", "Tilldelad"]),
    ("participants", ["participants", "deelnemers", "deltagare"]),
    ("replied", ["Replied", "Beantwoord", "Besvarad"]),
    ("received", ["Received", "Ontvangen", "Mottagen"]),
    ("comment_prefix", ["Comment:", "Opmerking:", "Kommentar:"]),
    ("nobody", ["Unassigned", "Niet toegewezen", "Ej tilldelad"]),
    (
        "empty",
        [
            "No conversations here.",
            "Geen gesprekken hier.",
            "Inga konversationer här.",
        ],
    ),
    ("next_page", ["Next page", "Volgende pagina", "Nästa sida"]),
    (
        "first_page",
        ["First page", "Eerste pagina", "Första sidan"],
    ),
    (
        "bulk.close",
        ["Close selected", "Geselecteerde sluiten", "Stäng valda"],
    ),
    (
        "bulk.trash",
        [
            "Trash selected",
            "Geselecteerde naar prullenbak",
            "Släng valda",
        ],
    ),
    (
        "bulk.assign",
        [
            "Assign selected to",
            "Geselecteerde toewijzen aan",
            "Tilldela valda till",
        ],
    ),
    (
        "bulk.assign_button",
        [
            "Assign selected",
            "Geselecteerde toewijzen",
            "Tilldela valda",
        ],
    ),
    (
        "bulk.done",
        [
            "conversations changed",
            "gesprekken gewijzigd",
            "konversationer ändrade",
        ],
    ),
    ("bulk.refused", ["refused", "geweigerd", "nekade"]),
    ("yesterday", ["yesterday", "gisteren", "igår"]),
    ("live.note", ["New activity in this conversation.", "Nieuwe activiteit in dit gesprek.", "Ny aktivitet i konversationen."]),
    ("live.show", ["Show it", "Tonen", "Visa"]),
    // compose, forward, attachments, presence
    ("forward", ["Forward", "Doorsturen", "Vidarebefordra"]),
    ("forward.note", ["Note", "Notitie", "Meddelande"]),
    ("forward.quoted", ["The conversation's messages are quoted below your note.", "De berichten van dit gesprek worden onder je notitie geciteerd.", "Konversationens meddelanden citeras under ditt meddelande."]),
    ("new_email", ["New email", "Nieuwe e-mail", "Nytt mejl"]),
    ("subject", ["Subject", "Onderwerp", "Ämne"]),
    ("message", ["Message", "Bericht", "Meddelande"]),
    ("attach", ["Attach files", "Bestanden bijvoegen", "Bifoga filer"]),
    ("attached", ["Attached", "Bijgevoegd", "Bifogat"]),
    ("presence.viewing", ["{name} is viewing", "{name} bekijkt dit", "{name} tittar på den här"]),
    ("presence.replying", ["{name} is replying", "{name} schrijft een antwoord", "{name} svarar"]),
    ("error.too_large", ["Too large", "Te groot", "För stort"]),
    // conversation
    (
        "back",
        [
            "Back to the list",
            "Terug naar de lijst",
            "Tillbaka till listan",
        ],
    ),
    ("assignee", ["Assignee", "Eigenaar", "Tilldelad"]),
    ("assign", ["Assign", "Toewijzen", "Tilldela"]),
    ("teams", ["Teams", "Teams", "Team"]),
    ("close", ["Close", "Sluiten", "Stäng"]),
    ("reopen", ["Reopen", "Heropenen", "Öppna igen"]),
    ("spam", ["Spam", "Spam", "Skräppost"]),
    ("not_spam", ["Not spam", "Geen spam", "Inte skräppost"]),
    ("trash", ["Trash", "Prullenbak", "Släng"]),
    ("restore", ["Restore", "Terugzetten", "Återställ"]),
    ("status.open", ["Open", "Open", "Öppen"]),
    ("status.closed", ["Closed", "Gesloten", "Stängd"]),
    ("from", ["From", "Van", "Från"]),
    ("to", ["To", "Aan", "Till"]),
    ("cc", ["Cc", "Cc", "Kopia"]),
    ("bcc", ["Bcc", "Bcc", "Hemlig kopia"]),
    ("date", ["Date", "Datum", "Datum"]),
    ("attachments", ["Attachments", "Bijlagen", "Bilagor"]),
    (
        "quoted",
        [
            "Show quoted text",
            "Geciteerde tekst tonen",
            "Visa citerad text",
        ],
    ),
    (
        "bounce_of",
        [
            "This is a bounce of a message we sent: show that message",
            "Dit is een onbestelbaar-melding van een bericht dat wij stuurden: dat bericht tonen",
            "Det här är en studs av ett meddelande vi skickade: visa det meddelandet",
        ],
    ),
    (
        "why_here",
        [
            "Why here?",
            "Waarom hier?",
            "Varför här?",
        ],
    ),
    (
        "thread.in_reply_to",
        [
            "Joined this conversation: it replies to a message in it (In-Reply-To).",
            "Bij dit gesprek gevoegd: het is een antwoord op een bericht hierin (In-Reply-To).",
            "Lades till i konversationen: det svarar på ett meddelande i den (In-Reply-To).",
        ],
    ),
    (
        "thread.references",
        [
            "Joined this conversation: it refers to a message in it (References).",
            "Bij dit gesprek gevoegd: het verwijst naar een bericht hierin (References).",
            "Lades till i konversationen: det hänvisar till ett meddelande i den (References).",
        ],
    ),
    (
        "thread.thread_index",
        [
            "Joined this conversation: Outlook marks it as part of this thread (Thread-Index).",
            "Bij dit gesprek gevoegd: Outlook markeert het als deel van deze thread (Thread-Index).",
            "Lades till i konversationen: Outlook markerar det som en del av tråden (Thread-Index).",
        ],
    ),
    (
        "thread.subject_and_contact",
        [
            "Joined this conversation: the same contact wrote with the same subject.",
            "Bij dit gesprek gevoegd: hetzelfde contact schreef met hetzelfde onderwerp.",
            "Lades till i konversationen: samma kontakt skrev med samma ämne.",
        ],
    ),
    (
        "thread.new",
        [
            "Started this conversation: it belongs to no earlier one.",
            "Begon dit gesprek: het hoort bij geen eerder gesprek.",
            "Startade konversationen: det hör inte till någon tidigare.",
        ],
    ),
    (
        "thread.stranger_reply",
        [
            "Started this conversation: it answers another one, but its sender takes no part in that one.",
            "Begon dit gesprek: het antwoordt op een ander gesprek, maar de afzender neemt daar geen deel aan.",
            "Startade konversationen: det svarar på en annan, men avsändaren deltar inte i den.",
        ],
    ),
    (
        "thread.subject_changed",
        [
            "Started this conversation: it answers another one, but its subject has nothing in common with it.",
            "Begon dit gesprek: het antwoordt op een ander gesprek, maar het onderwerp heeft daar niets mee gemeen.",
            "Startade konversationen: det svarar på en annan, men ämnet har inget gemensamt med den.",
        ],
    ),
    (
        "thread.split",
        [
            "In its own conversation: an agent split it off from the conversation it had joined.",
            "In een eigen gesprek: een medewerker heeft het afgesplitst van het gesprek waarbij het was gevoegd.",
            "I en egen konversation: en handläggare delade ut det från konversationen det hade lagts till i.",
        ],
    ),
    (
        "thread.merged",
        [
            "Joined this conversation: an agent merged its own conversation into this one.",
            "Bij dit gesprek gevoegd: een medewerker heeft het eigen gesprek hiermee samengevoegd.",
            "Lades till i konversationen: en handläggare slog ihop dess konversation med den här.",
        ],
    ),
    (
        "thread.conversation_gone",
        [
            "Started this conversation: the one it answers is in Trash or deleted.",
            "Begon dit gesprek: het gesprek waarop het antwoordt staat in de prullenbak of is verwijderd.",
            "Startade konversationen: den som det svarar på ligger i papperskorgen eller är borttagen.",
        ],
    ),
    (
        "truncated",
        [
            "This message is long; only its first 100 KB are shown.",
            "Dit bericht is lang; alleen de eerste 100 KB worden getoond.",
            "Meddelandet är långt; bara de första 100 KB visas.",
        ],
    ),
    (
        "show_whole",
        [
            "Show the whole message",
            "Het hele bericht tonen",
            "Visa hela meddelandet",
        ],
    ),
    (
        "images_blocked",
        [
            "Remote images are blocked.",
            "Externe afbeeldingen zijn geblokkeerd.",
            "Externa bilder är blockerade.",
        ],
    ),
    (
        "show_images",
        [
            "Show images",
            "Afbeeldingen tonen",
            "Visa bilder",
        ],
    ),
    (
        "html_version",
        [
            "Formatted version",
            "Opgemaakte versie",
            "Formaterad version",
        ],
    ),
    ("why", ["why?", "waarom?", "varför?"]),
    ("badge.spam", ["Spam", "Spam", "Skräppost"]),
    ("badge.filtered", ["Filtered", "Gefilterd", "Filtrerad"]),
    (
        "badge.auto_reply",
        ["Auto-reply", "Automatisch antwoord", "Autosvar"],
    ),
    ("badge.bulk", ["Bulk mail", "Bulkmail", "Massutskick"]),
    ("badge.bounce", ["Bounce", "Onbestelbaar", "Studsat"]),
    (
        "badge.feedback",
        ["Feedback report", "Feedbackrapport", "Feedbackrapport"],
    ),
    (
        "badge.trashed",
        ["In trash", "In prullenbak", "I papperskorgen"],
    ),
    ("delivery", ["Delivery", "Bezorging", "Leverans"]),
    ("delivery.queued", ["Queued", "In de wachtrij", "I kö"]),
    ("delivery.sending", ["Sending", "Wordt verzonden", "Skickas"]),
    ("delivery.sent", ["Sent", "Verzonden", "Skickat"]),
    (
        "delivery.deferred",
        ["Deferred, tried again later", "Uitgesteld, later opnieuw", "Uppskjutet, försöks igen senare"],
    ),
    ("delivery.failed", ["Failed", "Mislukt", "Misslyckades"]),
    ("no_subject", ["(no subject)", "(geen onderwerp)", "(inget ämne)"]),
    ("reason.score", ["Spam score", "Spamscore", "Skräppostpoäng"]),
    (
        "reason.token",
        ["Learned from mail marked before", "Geleerd van eerder gemarkeerde mail", "Inlärt från tidigare markerad e-post"],
    ),
    (
        "reason.dmarc",
        ["Fails its domain's DMARC policy", "Voldoet niet aan het DMARC-beleid van het domein", "Underkänd av domänens DMARC-policy"],
    ),
    ("reason.spamd", ["SpamAssassin rule", "SpamAssassin-regel", "SpamAssassin-regel"]),
    (
        "reason.role_sender",
        ["Sent from a role address", "Verzonden vanaf een functieadres", "Skickat från en funktionsadress"],
    ),
    (
        "reason.report",
        ["A machine-readable report", "Een machineleesbaar rapport", "En maskinläsbar rapport"],
    ),
    (
        "reason.bounce",
        ["A returned-mail notice", "Een melding van onbestelbare mail", "Ett meddelande om studsad e-post"],
    ),
    ("reason.subject", ["Its subject", "Het onderwerp", "Ämnesraden"]),
    (
        "reason.auto_header",
        ["A header saying it was sent automatically", "Een header die zegt dat het automatisch is verzonden", "Ett huvud som säger att det skickades automatiskt"],
    ),
    (
        "reason.list",
        ["Sent through a mailing list", "Verzonden via een mailinglijst", "Skickat via en e-postlista"],
    ),
    (
        "reason.null_sender",
        ["Sent with an empty return path", "Verzonden zonder retouradres", "Skickat utan returadress"],
    ),
    ("reason.other", ["Other sign", "Ander kenmerk", "Annat tecken"]),
    ("timeline", ["Activity", "Activiteit", "Aktivitet"]),
    ("reply", ["Reply", "Beantwoorden", "Svara"]),
    ("send", ["Send", "Versturen", "Skicka"]),
    ("reply.newer", ["A new message arrived after you started this reply. Read it, then send your reply if it still fits.", "Er kwam een nieuw bericht binnen nadat je aan dit antwoord begon. Lees het en verstuur je antwoord als het nog klopt.", "Ett nytt meddelande kom in efter att du började svara. Läs det och skicka sedan ditt svar om det fortfarande passar."]),
    ("sent_as", ["Sent as", "Verstuurd als", "Skickas som"]),
    ("signature", ["Signature", "Handtekening", "Signatur"]),
    ("comment", ["Comment", "Opmerking", "Kommentar"]),
    (
        "add_comment",
        ["Add comment", "Opmerking toevoegen", "Lägg till kommentar"],
    ),
    (
        "internal_note",
        [
            "Internal note, not sent to the customer",
            "Interne notitie, niet naar de klant gestuurd",
            "Intern anteckning, skickas inte till kunden",
        ],
    ),
    (
        "view_only",
        [
            "You can read this inbox but not act in it.",
            "Je kunt deze inbox lezen maar er niets in doen.",
            "Du kan läsa inkorgen men inte agera i den.",
        ],
    ),
    // more actions (F4, G3): move, block sender, delete forever, split, merge
    (
        "close_with_ticket",
        ["Close with ticket", "Sluiten met ticket", "Stäng med ärende"],
    ),
    (
        "block_sender",
        ["Block sender", "Afzender blokkeren", "Blockera avsändare"],
    ),
    (
        "delete_forever",
        ["Delete forever", "Definitief verwijderen", "Radera permanent"],
    ),
    ("move_to", ["Move to inbox", "Verplaatsen naar inbox", "Flytta till inkorg"]),
    ("move", ["Move", "Verplaatsen", "Flytta"]),
    (
        "merge_into",
        [
            "Merge into conversation",
            "Samenvoegen met gesprek",
            "Slå ihop med konversation",
        ],
    ),
    ("merge", ["Merge", "Samenvoegen", "Slå ihop"]),
    ("split", ["Split", "Splitsen", "Dela upp"]),
    (
        "split.hint",
        [
            "Move this message into a conversation of its own",
            "Dit bericht naar een eigen gesprek verplaatsen",
            "Flytta meddelandet till en egen konversation",
        ],
    ),
    (
        "confirm.delete",
        [
            "Delete this conversation forever? Its messages, comments and ticket are removed. This cannot be undone.",
            "Dit gesprek definitief verwijderen? De berichten, opmerkingen en het ticket worden verwijderd. Dit kan niet ongedaan worden gemaakt.",
            "Radera konversationen permanent? Meddelanden, kommentarer och ärendet tas bort. Det går inte att ångra.",
        ],
    ),
    (
        "confirm.block_sender",
        [
            "Block this sender? This conversation goes to Filtered, and so will their future mail.",
            "Deze afzender blokkeren? Dit gesprek gaat naar Gefilterd, en hun toekomstige e-mail ook.",
            "Blockera avsändaren? Konversationen hamnar i Filtrerade, och likaså deras framtida e-post.",
        ],
    ),
    (
        "confirm.merge",
        [
            "Merge this conversation into the one below? Its messages, comments and activity move there, and this conversation disappears.",
            "Dit gesprek samenvoegen met het gesprek hieronder? De berichten, opmerkingen en activiteit gaan daarheen, en dit gesprek verdwijnt.",
            "Slå ihop konversationen med den nedan? Meddelanden, kommentarer och aktivitet flyttas dit, och den här konversationen försvinner.",
        ],
    ),
    ("cancel", ["Cancel", "Annuleren", "Avbryt"]),
    // timeline entries
    (
        "timeline.split_to",
        [
            "split a message off into",
            "splitste een bericht af naar",
            "delade ut ett meddelande till",
        ],
    ),
    (
        "timeline.split_from",
        ["split off from", "afgesplitst van", "utdelad från"],
    ),
    (
        "timeline.merged_from",
        ["merged in", "voegde samen met", "slog ihop med"],
    ),
    (
        "timeline.merged_into",
        ["merged into", "samengevoegd met", "sammanslagen med"],
    ),
    ("timeline.assign", ["assigned", "wees toe", "tilldelade"]),
    ("timeline.unassign", ["unassigned", "haalde toewijzing weg", "tog bort tilldelning"]),
    ("timeline.close", ["closed", "sloot", "stängde"]),
    ("timeline.reopen", ["reopened", "heropende", "öppnade igen"]),
    ("timeline.move", ["moved to", "verplaatste naar", "flyttade till"]),
    ("timeline.trash", ["moved to trash", "verplaatste naar prullenbak", "slängde"]),
    ("timeline.restore", ["restored", "zette terug", "återställde"]),
    ("timeline.spam", ["marked spam", "markeerde als spam", "markerade som skräppost"]),
    (
        "timeline.not_spam",
        ["marked not spam", "markeerde als geen spam", "markerade som inte skräppost"],
    ),
    (
        "timeline.block_sender",
        ["blocked sender", "blokkeerde afzender", "blockerade avsändaren"],
    ),
    ("contact", ["Contact", "Contact", "Kontakt"]),
    ("ticket", ["Ticket", "Ticket", "Ärende"]),
    ("contact_owner", ["Owner", "Eigenaar", "Ägare"]),
    ("unseen", ["new", "nieuw", "ny"]),
    ("ticket_owner", ["Owner", "Eigenaar", "Ägare"]),
    (
        "other_conversations",
        [
            "Other conversations",
            "Andere gesprekken",
            "Andra konversationer",
        ],
    ),
    ("messages", ["messages", "berichten", "meddelanden"]),
    // errors
    (
        "error.not_found",
        ["Not found", "Niet gevonden", "Hittades inte"],
    ),
    (
        "error.forbidden",
        ["Not allowed", "Niet toegestaan", "Inte tillåtet"],
    ),
    (
        "error.invalid",
        ["That did not work", "Dat lukte niet", "Det gick inte"],
    ),
    (
        "error.internal",
        ["Something went wrong", "Er ging iets mis", "Något gick fel"],
    ),
    (
        "error.csrf",
        [
            "This form has expired; reload the page and try again.",
            "Dit formulier is verlopen; laad de pagina opnieuw en probeer het nog eens.",
            "Formuläret har gått ut; ladda om sidan och försök igen.",
        ],
    ),
    // keyboard
    (
        "shortcuts",
        ["Keyboard shortcuts", "Sneltoetsen", "Kortkommandon"],
    ),
    (
        "key.next",
        ["next conversation", "volgend gesprek", "nästa konversation"],
    ),
    (
        "key.previous",
        [
            "previous conversation",
            "vorig gesprek",
            "föregående konversation",
        ],
    ),
    ("key.open", ["open", "openen", "öppna"]),
    ("key.reply", ["reply", "beantwoorden", "svara"]),
    ("key.comment", ["comment", "opmerking", "kommentar"]),
    ("key.close", ["close", "sluiten", "stäng"]),
    ("key.assign", ["assign to me", "aan mij toewijzen", "tilldela mig"]),
    ("key.search", ["search", "zoeken", "sök"]),
    (
        "key.help",
        [
            "show these shortcuts",
            "deze sneltoetsen tonen",
            "visa kortkommandona",
        ],
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_browser_s_first_language_of_the_catalogue_is_chosen() {
        assert_eq!(
            Lang::from_accept_language("nl-NL,nl;q=0.9,en;q=0.8"),
            Lang::Nl
        );
        assert_eq!(
            Lang::from_accept_language("de-DE, sv;q=0.7, en;q=0.5"),
            Lang::Sv
        );
        assert_eq!(
            Lang::from_accept_language("en;q=0.4, SV-se;q=0.9"),
            Lang::Sv
        );
        assert_eq!(Lang::from_accept_language("nl;q=0, fr"), Lang::En);
        assert_eq!(Lang::from_accept_language("*"), Lang::En);
        assert_eq!(Lang::from_accept_language(""), Lang::En);
    }

    #[test]
    fn every_catalogue_key_is_unique_and_translated() {
        let mut seen = std::collections::HashSet::new();
        for (key, texts) in CATALOGUE {
            assert!(seen.insert(key), "{key} twice");
            assert!(
                texts.iter().all(|t| !t.is_empty()),
                "{key} has an empty text"
            );
        }
    }

    #[test]
    fn the_contract_labels_are_the_english_texts() {
        let en = Lang::En;
        assert_eq!(en.t("sign_in.email"), "Email");
        assert_eq!(en.t("sign_in.password"), "Password");
        assert_eq!(en.t("sign_in.button"), "Sign in");
        assert_eq!(en.t("reply"), "Reply");
        assert_eq!(en.t("add_comment"), "Add comment");
        assert_eq!(Lang::Nl.t("view.trash"), "Prullenbak");
    }

    #[test]
    fn keys_named_outside_a_t_call_are_in_the_catalogue() {
        // Confirmation questions and timeline names are passed around as keys.
        let source = include_str!("pages/conversation.rs").to_string() + include_str!("actions.rs");
        for prefix in ["\"confirm.", "\"timeline."] {
            for piece in source.split(prefix).skip(1) {
                let rest = piece.split('"').next().unwrap_or_default();
                let key = format!("{}{rest}", &prefix[1..]);
                assert!(
                    CATALOGUE.iter().any(|(k, _)| *k == key),
                    "{key} is used but not in the catalogue"
                );
            }
        }
    }

    #[test]
    fn every_key_the_templates_use_is_in_the_catalogue() {
        let sources = [
            include_str!("pages/mod.rs"),
            include_str!("pages/list.rs"),
            include_str!("pages/conversation.rs"),
            include_str!("pages/sign_in.rs"),
            include_str!("actions.rs"),
            include_str!("session.rs"),
            include_str!("compose.rs"),
            include_str!("presence.rs"),
        ];
        for source in sources {
            for piece in source.split(".t(\"").skip(1) {
                let key = piece.split('"').next().unwrap_or_default();
                assert!(
                    CATALOGUE.iter().any(|(k, _)| *k == key),
                    "{key} is used but not in the catalogue"
                );
            }
        }
    }
}
