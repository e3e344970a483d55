//! Working-day calendar and the two-working-day due date (DOMAIN.md, SLA).
//!
//! Holidays follow the French rules per subdivision (metropolitan France, Alsace-Moselle, the
//! overseas départements and collectivités). The processing site picks its subdivision and its
//! time zone in configuration.

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday};
use serde::{Deserialize, Serialize};

/// The holiday calendar a site follows (codes as in the `holidays` reference data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Subdivision {
    #[serde(rename = "FR")]
    Metropole,
    /// Moselle (57); the same calendar as Bas-Rhin and Haut-Rhin.
    #[serde(rename = "57")]
    Moselle,
    /// Bas-Rhin and Haut-Rhin (67, 68).
    #[serde(rename = "6AE")]
    Alsace,
    #[serde(rename = "971")]
    Guadeloupe,
    #[serde(rename = "972")]
    Martinique,
    #[serde(rename = "973")]
    Guyane,
    #[serde(rename = "974")]
    Reunion,
    #[serde(rename = "976")]
    Mayotte,
    #[serde(rename = "BL")]
    SaintBarthelemy,
    #[serde(rename = "MF")]
    SaintMartin,
}

impl Subdivision {
    pub const ALL: [Subdivision; 10] = [
        Self::Metropole,
        Self::Moselle,
        Self::Alsace,
        Self::Guadeloupe,
        Self::Martinique,
        Self::Guyane,
        Self::Reunion,
        Self::Mayotte,
        Self::SaintBarthelemy,
        Self::SaintMartin,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::Metropole => "FR",
            Self::Moselle => "57",
            Self::Alsace => "6AE",
            Self::Guadeloupe => "971",
            Self::Martinique => "972",
            Self::Guyane => "973",
            Self::Reunion => "974",
            Self::Mayotte => "976",
            Self::SaintBarthelemy => "BL",
            Self::SaintMartin => "MF",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }

    /// The calendar of a département's sites (`067` → Alsace); metropolitan France by default.
    pub fn for_departement(dep: &str) -> Self {
        match dep {
            "057" => Self::Moselle,
            "067" | "068" => Self::Alsace,
            "971" => Self::Guadeloupe,
            "972" => Self::Martinique,
            "973" => Self::Guyane,
            "974" => Self::Reunion,
            "976" => Self::Mayotte,
            "977" => Self::SaintBarthelemy,
            "978" => Self::SaintMartin,
            _ => Self::Metropole,
        }
    }

    /// The legal time of the subdivision.
    pub fn zone(self) -> SiteZone {
        match self {
            Self::Metropole | Self::Moselle | Self::Alsace => SiteZone::Paris,
            Self::Guadeloupe | Self::Martinique | Self::SaintBarthelemy | Self::SaintMartin => SiteZone::Fixed(-4 * 3600),
            Self::Guyane => SiteZone::Fixed(-3 * 3600),
            Self::Reunion => SiteZone::Fixed(4 * 3600),
            Self::Mayotte => SiteZone::Fixed(3 * 3600),
        }
    }
}

/// A site's legal time: Paris (CET/CEST, EU rules) or a fixed offset in seconds (overseas).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteZone {
    Paris,
    Fixed(i32),
}

impl SiteZone {
    /// Offset in force at an instant.
    pub fn offset_at(self, instant: DateTime<Utc>) -> FixedOffset {
        let secs = match self {
            Self::Fixed(s) => s,
            Self::Paris => {
                let y = instant.year();
                // EU summer time: last Sunday of March 01:00 UTC to last Sunday of October 01:00 UTC.
                let start = last_sunday(y, 3).and_time(NaiveTime::from_hms_opt(1, 0, 0).unwrap_or_default()).and_utc();
                let end = last_sunday(y, 10).and_time(NaiveTime::from_hms_opt(1, 0, 0).unwrap_or_default()).and_utc();
                if instant >= start && instant < end { 7200 } else { 3600 }
            }
        };
        FixedOffset::east_opt(secs).unwrap_or(FixedOffset::east_opt(0).expect("zero offset"))
    }

    /// The instant of a local wall-clock time (the earlier one when the hour is ambiguous).
    pub fn from_local(self, local: NaiveDateTime) -> DateTime<FixedOffset> {
        // Try the winter offset then the summer one; keep the one that is consistent.
        let candidates = match self {
            Self::Fixed(s) => vec![s],
            Self::Paris => vec![7200, 3600],
        };
        for secs in candidates {
            let off = FixedOffset::east_opt(secs).expect("valid offset");
            if let Some(dt) = off.from_local_datetime(&local).single()
                && self.offset_at(dt.with_timezone(&Utc)) == off
            {
                return dt;
            }
        }
        // In the spring gap: the wall-clock hour does not exist; use the winter offset.
        let off = self.offset_at((local - Duration::hours(1)).and_utc());
        off.from_local_datetime(&local).single().expect("fixed offsets are unambiguous")
    }
}

fn last_sunday(year: i32, month: u32) -> NaiveDate {
    let next_month = if month == 12 { NaiveDate::from_ymd_opt(year + 1, 1, 1) } else { NaiveDate::from_ymd_opt(year, month + 1, 1) };
    let mut d = next_month.expect("valid date") - Duration::days(1);
    while d.weekday() != Weekday::Sun {
        d -= Duration::days(1);
    }
    d
}

/// Easter Sunday (Gregorian, anonymous algorithm).
pub fn easter(year: i32) -> NaiveDate {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, month as u32, day as u32).expect("easter is a valid date")
}

/// The public holidays of a year in a subdivision, sorted and without duplicates.
pub fn holidays(year: i32, sub: Subdivision) -> Vec<NaiveDate> {
    let ymd = |m, d| NaiveDate::from_ymd_opt(year, m, d).expect("fixed holiday dates are valid");
    let e = easter(year);
    let mut days =
        vec![ymd(1, 1), e + Duration::days(1), ymd(5, 1), ymd(5, 8), e + Duration::days(39), ymd(7, 14), ymd(8, 15), ymd(11, 1), ymd(11, 11), ymd(12, 25)];
    // Whit Monday was the "journée de solidarité" instead of a holiday from 2005 to 2007.
    if !(2005..=2007).contains(&year) {
        days.push(e + Duration::days(50));
    }
    use Subdivision::*;
    if matches!(sub, Moselle | Alsace) {
        days.push(e - Duration::days(2));
        days.push(ymd(12, 26));
    }
    if matches!(sub, Guadeloupe | Martinique) {
        days.push(e - Duration::days(2));
        days.push(ymd(7, 21));
    }
    match sub {
        Guadeloupe => {
            days.push(e - Duration::days(24)); // Mi-Carême
            days.push(ymd(5, 27));
        }
        Martinique => days.push(ymd(5, 22)),
        Guyane => days.push(ymd(6, 10)),
        Reunion => days.push(ymd(12, 20)),
        Mayotte => days.push(ymd(4, 27)),
        SaintBarthelemy if year >= 2012 => days.push(ymd(10, 9)),
        SaintMartin if year >= 2012 => {
            days.push(ymd(5, 28));
            days.push(ymd(7, 21));
        }
        _ => {}
    }
    days.sort();
    days.dedup();
    days
}

/// Working days (jours ouvrés): Monday to Friday minus the subdivision's public holidays.
#[derive(Debug, Clone, Copy)]
pub struct WorkingCalendar {
    pub subdivision: Subdivision,
    pub zone: SiteZone,
}

impl WorkingCalendar {
    pub fn new(subdivision: Subdivision) -> Self {
        Self { subdivision, zone: subdivision.zone() }
    }

    pub fn is_working_day(&self, d: NaiveDate) -> bool {
        !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) && holidays(d.year(), self.subdivision).binary_search(&d).is_err()
    }

    fn next_working_day(&self, mut d: NaiveDate) -> NaiveDate {
        d += Duration::days(1);
        while !self.is_working_day(d) {
            d += Duration::days(1);
        }
        d
    }

    /// End (23:59:59 local) of the second working day after the day of reception; a mailing
    /// received on a non-working day counts as received on the next working day.
    pub fn due_at(&self, received_at: DateTime<FixedOffset>) -> DateTime<FixedOffset> {
        let utc = received_at.with_timezone(&Utc);
        let local_day = utc.with_timezone(&self.zone.offset_at(utc)).date_naive();
        let mut day = if self.is_working_day(local_day) { local_day } else { self.next_working_day(local_day) };
        for _ in 0..2 {
            day = self.next_working_day(day);
        }
        self.zone.from_local(day.and_time(NaiveTime::from_hms_opt(23, 59, 59).expect("valid time")))
    }

    /// The instant a local day begins (midnight, the site's legal time): the bound of a day or
    /// a month people ask about.
    pub fn day_start(&self, day: NaiveDate) -> DateTime<FixedOffset> {
        self.zone.from_local(day.and_time(NaiveTime::MIN))
    }

    /// An instant expressed in the site's legal time (for `received_at` in the report).
    pub fn localise(&self, instant: DateTime<FixedOffset>) -> DateTime<FixedOffset> {
        let utc = instant.with_timezone(&Utc);
        utc.with_timezone(&self.zone.offset_at(utc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).expect("rfc3339")
    }

    #[test]
    fn easter_known_years() {
        assert_eq!(easter(2024), NaiveDate::from_ymd_opt(2024, 3, 31).expect("date"));
        assert_eq!(easter(2026), NaiveDate::from_ymd_opt(2026, 4, 5).expect("date"));
        assert_eq!(easter(2038), NaiveDate::from_ymd_opt(2038, 4, 25).expect("date"));
    }

    #[test]
    fn domain_example_monday_to_wednesday() {
        let cal = WorkingCalendar::new(Subdivision::Metropole);
        assert_eq!(cal.due_at(at("2026-11-16T10:00:00+01:00")), at("2026-11-18T23:59:59+01:00"));
        // Contract example: received Wednesday 18 Nov → due Friday 20 Nov.
        assert_eq!(cal.due_at(at("2026-11-18T09:12:00+01:00")).to_rfc3339(), "2026-11-20T23:59:59+01:00");
    }

    #[test]
    fn weekends_and_holidays_push_the_due_date() {
        let cal = WorkingCalendar::new(Subdivision::Metropole);
        // Friday → Tuesday.
        assert_eq!(cal.due_at(at("2026-11-20T16:00:00+01:00")), at("2026-11-24T23:59:59+01:00"));
        // Saturday counts as Monday → Wednesday.
        assert_eq!(cal.due_at(at("2026-11-21T11:00:00+01:00")), at("2026-11-25T23:59:59+01:00"));
        // Tuesday 10 Nov 2026 → Thursday 12 (11 Nov is Armistice, so Friday 13).
        assert_eq!(cal.due_at(at("2026-11-10T09:00:00+01:00")), at("2026-11-13T23:59:59+01:00"));
        // Christmas Eve 2026 (Thursday): 25 holiday, weekend → Tuesday 29; Alsace also skips 26 (Saturday anyway).
        assert_eq!(cal.due_at(at("2026-12-24T09:00:00+01:00")), at("2026-12-29T23:59:59+01:00"));
        // Good Friday 3 April 2026 is a working day in Paris, not in Strasbourg.
        assert_eq!(cal.due_at(at("2026-04-02T09:00:00+02:00")), at("2026-04-07T23:59:59+02:00"));
        let alsace = WorkingCalendar::new(Subdivision::Alsace);
        assert_eq!(alsace.due_at(at("2026-04-02T09:00:00+02:00")), at("2026-04-08T23:59:59+02:00"));
    }

    #[test]
    fn reception_day_is_the_sites_local_day_and_offsets_follow_summer_time() {
        let paris = WorkingCalendar::new(Subdivision::Metropole);
        // 23:30 UTC on Friday 27 March 2026 is already Saturday in Paris → Monday 30 → Wednesday 1 April (CEST).
        assert_eq!(paris.due_at(at("2026-03-27T23:30:00Z")), at("2026-04-01T23:59:59+02:00"));
        let reunion = WorkingCalendar::new(Subdivision::Reunion);
        assert_eq!(reunion.due_at(at("2026-11-16T10:00:00+04:00")), at("2026-11-18T23:59:59+04:00"));
        assert_eq!(paris.localise(at("2026-07-01T10:00:00Z")).to_rfc3339(), "2026-07-01T12:00:00+02:00");
    }

    /// Every year and subdivision of the reference data (holidays 2000-2100 from the Python
    /// `holidays` package) must give exactly the same days.
    #[test]
    fn matches_the_reference_holidays_for_every_year_and_subdivision() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/domain/oracle/holidays-fr.csv");
        let Ok(csv) = std::fs::read_to_string(path) else { panic!("reference data missing at {path}: the shared/ folder must sit beside the project") };
        let mut expected: std::collections::BTreeMap<(String, i32), Vec<NaiveDate>> = Default::default();
        for line in csv.lines().skip(1) {
            let mut f = line.splitn(3, ',');
            let (Some(sub), Some(date)) = (f.next(), f.next()) else { continue };
            let d = NaiveDate::parse_from_str(date, "%Y-%m-%d").expect("oracle date");
            expected.entry((sub.to_string(), d.year())).or_default().push(d);
        }
        let mut checked = 0;
        for ((sub, year), mut days) in expected {
            let s = Subdivision::from_code(&sub).unwrap_or_else(|| panic!("unknown subdivision {sub}"));
            days.sort();
            days.dedup();
            assert_eq!(holidays(year, s), days, "{sub} {year}");
            checked += 1;
        }
        assert_eq!(checked, 101 * 10, "every year 2000-2100 of the 10 subdivisions");
    }
}
