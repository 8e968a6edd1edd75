//! Every string of the web inbox, in one catalogue: English, Dutch and Swedish (the
//! seed articles' languages, with their words for views and actions). A user's
//! language is `[[users]] language` in the configuration; English by default.

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
            "Too many failed sign-ins. Try again in a minute.",
            "Te veel mislukte pogingen. Probeer het over een minuut opnieuw.",
            "För många misslyckade inloggningar. Försök igen om en minut.",
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
    ("contact", ["Contact", "Contact", "Kontakt"]),
    ("ticket", ["Ticket", "Ticket", "Ärende"]),
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
