//! Checks across all channels (SPEC A3, A6): one address, one From name.

use super::*; // the section checks share the parent's imports and helpers

pub(super) fn cross_check(sites: &[Site], users: &[User], p: &mut Problems) {
    let mut by_address: HashMap<&str, &Site> = HashMap::new();
    let mut by_from_name: HashMap<(&str, String), &Site> = HashMap::new();
    for site in sites {
        if !site.address.is_empty() {
            check_address(p, site, &mut by_address, users);
        }
        if let (true, Some(from)) = (site.fallback, &site.from_name) {
            let id = (mode_name(from.mode), from.company.to_lowercase());
            match by_from_name.get(&id) {
                Some(first) => p.add(
                    &join(&site.channel_key, "from_name"),
                    format!(
                        "from-name {:?} (mode {}) is already used by the fallback channel {} (inbox {:?}); fallback addresses need distinct from-names",
                        from.company, mode_name(from.mode), first.channel_key, first.inbox
                    ),
                ),
                None => {
                    by_from_name.insert(id, site);
                }
            }
        }
    }
}

pub(super) fn check_address<'a>(
    p: &mut Problems,
    site: &'a Site,
    seen: &mut HashMap<&'a str, &'a Site>,
    users: &[User],
) {
    if let Some(first) = seen.get(site.address.as_str()) {
        p.add(
            &site.address_key,
            format!(
                "{} is already the address of {} (inbox {:?}); an address belongs to one channel only",
                site.address, first.channel_key, first.inbox
            ),
        );
    } else {
        seen.insert(&site.address, site);
    }
    if let Some(i) = users.iter().position(|u| u.email == site.address) {
        p.add(
            &site.address_key,
            format!(
                "{} is the personal address of users[{i}]; it cannot also be a channel address",
                site.address
            ),
        );
    }
}

pub(super) fn mode_name(mode: FromNameMode) -> &'static str {
    FROM_NAME_MODES
        .iter()
        .find(|(_, m)| *m == mode)
        .map_or("?", |(name, _)| name)
}
