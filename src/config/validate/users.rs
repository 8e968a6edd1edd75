//! `[[users]]` and `[[teams]]`: addresses, names, duplicates, members.

use super::*; // the section checks share the parent's imports and helpers

pub(super) fn users(raw: &[RawUser], p: &mut Problems) -> Vec<User> {
    let mut first: HashMap<String, usize> = HashMap::new();
    let mut users = Vec::new();
    for (i, u) in raw.iter().enumerate() {
        let key = format!("users[{i}]");
        let email = email(p, &join(&key, "email"), u.email.as_deref());
        if let Some(j) = first.get(&email) {
            p.add(
                &join(&key, "email"),
                format!("{email} is already the address of users[{j}]"),
            );
        } else if !email.is_empty() {
            first.insert(email.clone(), i);
        }
        users.push(User {
            email,
            name: required(p, &join(&key, "name"), u.name.as_deref()),
            paid_seat: u.paid_seat.unwrap_or(defaults::PAID_SEAT),
            super_admin: u.super_admin.unwrap_or(defaults::SUPER_ADMIN),
            available: u.available.unwrap_or(defaults::AVAILABLE),
            language: choice(
                p,
                &join(&key, "language"),
                u.language.as_deref(),
                Some("en"),
                &[("en", "en"), ("nl", "nl"), ("sv", "sv")],
            )
            .unwrap_or("en"),
        });
    }
    users
}

pub(super) fn teams(raw: &[RawTeam], users: &[User], p: &mut Problems) -> Vec<Team> {
    let mut teams: Vec<Team> = Vec::new();
    for (i, t) in raw.iter().enumerate() {
        let key = format!("teams[{i}]");
        let name = required(p, &join(&key, "name"), t.name.as_deref());
        if let Some(j) = teams
            .iter()
            .position(|o| o.name.eq_ignore_ascii_case(&name))
        {
            p.add(
                &join(&key, "name"),
                format!("team {name:?} is already defined by teams[{j}]"),
            );
        }
        let mut members: Vec<String> = Vec::new();
        for (m, member) in t.members.iter().flatten().enumerate() {
            let member_key = format!("{key}.members[{m}]");
            let email = user_ref(p, &member_key, member, users);
            if members.contains(&email) {
                p.add(&member_key, format!("{email} is listed twice"));
            }
            members.push(email);
        }
        teams.push(Team { name, members });
    }
    teams
}
