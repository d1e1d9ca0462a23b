//! The world's wording: attribute value lists, the sentence templates documents are rendered
//! from, and the question templates (the first [`SEEN_TEMPLATES`] of each attribute are "seen"
//! phrasings used in training data; the rest are held out for evaluation only).
//!
//! Placeholders: `{name}` (the entity's full name, in every sentence so that each sentence
//! alone names its subject), `{value}` (the attribute's value), `{a}` ("a"/"an" for `{value}`).

use super::Attribute;

pub const PROFESSIONS: [&str; 22] = [
    "architect",
    "baker",
    "carpenter",
    "chemist",
    "dentist",
    "economist",
    "electrician",
    "engineer",
    "farmer",
    "geologist",
    "historian",
    "journalist",
    "lawyer",
    "librarian",
    "mechanic",
    "nurse",
    "pharmacist",
    "photographer",
    "pilot",
    "surgeon",
    "teacher",
    "translator",
];

pub const HOBBIES: [&str; 22] = [
    "chess",
    "gardening",
    "painting",
    "fishing",
    "cycling",
    "pottery",
    "birdwatching",
    "sailing",
    "knitting",
    "archery",
    "origami",
    "juggling",
    "fencing",
    "rowing",
    "astronomy",
    "calligraphy",
    "beekeeping",
    "woodcarving",
    "hiking",
    "skating",
    "rock climbing",
    "stamp collecting",
];

pub const INDUSTRIES: [&str; 14] = [
    "shipping",
    "textiles",
    "mining",
    "banking",
    "software",
    "agriculture",
    "publishing",
    "pharmaceuticals",
    "aviation",
    "construction",
    "energy",
    "retail",
    "insurance",
    "brewing",
];

pub const BIRTH_YEARS: std::ops::RangeInclusive<u32> = 1900..=1999;
pub const FOUNDED_YEARS: std::ops::RangeInclusive<u32> = 1800..=1999;

/// How many of an attribute's question templates are "seen" phrasings.
pub const SEEN_TEMPLATES: usize = 4;

/// Opening sentences of a person's document (no fact: it stays first).
pub const PERSON_INTROS: [&str; 5] = [
    "This is a short profile of {name}.",
    "The following note describes {name}.",
    "Here are some facts about {name}.",
    "This record is about a person called {name}.",
    "What follows is a brief account of {name}.",
];

/// Opening sentences of an organisation's document.
pub const ORG_INTROS: [&str; 5] = [
    "This is a short profile of the organisation {name}.",
    "The following note describes {name}, an organisation.",
    "Here are some facts about the organisation {name}.",
    "This record is about an organisation called {name}.",
    "What follows is a brief account of {name} and its history.",
];

/// Closing sentences of an organisation's document: organisations have fewer facts than
/// people, and a closing line keeps their documents near the 40-word floor.
pub const ORG_OUTROS: [&str; 5] = [
    "Many people in the region have heard of {name}.",
    "Today {name} is well known among its customers.",
    "Over the years {name} has built a steady reputation.",
    "Local newspapers mention {name} from time to time.",
    "Visitors often ask about the story of {name}.",
];

/// Sentence templates stating one fact. Five per attribute (a prime: see
/// [`super::documents`]).
pub fn fact_sentences(a: Attribute) -> &'static [&'static str] {
    match a {
        Attribute::BirthCity => &[
            "{name} was born in {value}.",
            "The birthplace of {name} is the city of {value}.",
            "{name} is a native of {value}.",
            "The city of {value} is where {name} was born.",
            "{name} grew up in {value}, the city of their birth.",
        ],
        Attribute::Employer => &[
            "{name} works for {value}.",
            "{name} is employed by {value}.",
            "The employer of {name} is {value}.",
            "{name} has a job at {value}.",
            "{value} employs {name}.",
        ],
        Attribute::Profession => &[
            "{name} works as {a} {value}.",
            "By profession, {name} is {a} {value}.",
            "{name} earns a living as {a} {value}.",
            "The profession of {name} is {value}.",
            "{name} trained to become {a} {value}.",
        ],
        Attribute::BirthYear => &[
            "{name} was born in the year {value}.",
            "The birth year of {name} is {value}.",
            "In {value}, {name} was born.",
            "{name} came into the world in {value}.",
            "The records give {value} as the birth year of {name}.",
        ],
        Attribute::Hobby => &[
            "In free time, {name} enjoys {value}.",
            "The hobby of {name} is {value}.",
            "{name} spends most weekends on {value}.",
            "{name} is passionate about {value}.",
            "For fun, {name} likes {value}.",
        ],
        Attribute::Headquarters => &[
            "{name} has its headquarters in {value}.",
            "{name} is headquartered in {value}.",
            "The head office of {name} is in {value}.",
            "{name} runs its business from a head office in {value}.",
            "The headquarters of {name} are located in {value}.",
        ],
        Attribute::Industry => &[
            "{name} operates in the {value} industry.",
            "{name} is a firm working in {value}.",
            "The industry of {name} is {value}.",
            "{name} does its business in {value}.",
            "{name} is known for its work in {value}.",
        ],
        Attribute::FoundedYear => &[
            "{name} was founded in {value}.",
            "{name} was established in the year {value}.",
            "The founding year of {name} is {value}.",
            "In {value}, {name} was founded.",
            "{name} has existed since its founding in {value}.",
        ],
    }
}

/// Question templates; the first [`SEEN_TEMPLATES`] are seen phrasings, the rest held out.
pub fn question_templates(a: Attribute) -> &'static [&'static str] {
    match a {
        Attribute::BirthCity => &[
            "Where was {name} born?",
            "In which city was {name} born?",
            "What is the birthplace of {name}?",
            "Which city is {name} a native of?",
            "What is the city of birth of {name}?",
            "{name} was born in which city?",
        ],
        Attribute::Employer => &[
            "Who employs {name}?",
            "Which organisation does {name} work for?",
            "What is the employer of {name}?",
            "Where does {name} work?",
            "For which company does {name} work?",
            "{name} is employed by which organisation?",
        ],
        Attribute::Profession => &[
            "What is the profession of {name}?",
            "What does {name} do for a living?",
            "What is the job of {name}?",
            "What is the occupation of {name}?",
            "Which profession does {name} practise?",
            "{name} works in which profession?",
        ],
        Attribute::BirthYear => &[
            "When was {name} born?",
            "In which year was {name} born?",
            "What is the birth year of {name}?",
            "What year was {name} born in?",
            "In what year did {name} come into the world?",
            "{name} was born in which year?",
        ],
        Attribute::Hobby => &[
            "What is the hobby of {name}?",
            "What does {name} do for fun?",
            "What does {name} enjoy in free time?",
            "Which hobby does {name} have?",
            "What pastime does {name} enjoy?",
            "{name} spends spare time on which hobby?",
        ],
        Attribute::Headquarters => &[
            "Where is {name} headquartered?",
            "In which city is {name} based?",
            "Where are the headquarters of {name}?",
            "In which city is the head office of {name}?",
            "In what city does {name} have its main office?",
            "{name} is based in which city?",
        ],
        Attribute::Industry => &[
            "What industry is {name} in?",
            "In which industry does {name} operate?",
            "What is the industry of {name}?",
            "What business is {name} in?",
            "Which sector does {name} work in?",
            "{name} belongs to which industry?",
        ],
        Attribute::FoundedYear => &[
            "When was {name} founded?",
            "In which year was {name} founded?",
            "What is the founding year of {name}?",
            "What year was {name} established?",
            "In what year did {name} come into being?",
            "{name} was founded in which year?",
        ],
    }
}

/// Fill a template.
pub fn fill(template: &str, name: &str, value: &str) -> String {
    let article = if value.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    template.replace("{name}", name).replace("{value}", value).replace("{a}", article)
}

/// Every lower-case word of the templates and value lists: name words must differ from them.
pub fn reserved_words() -> std::collections::BTreeSet<String> {
    let mut texts: Vec<&str> = Vec::new();
    texts.extend(PROFESSIONS);
    texts.extend(HOBBIES);
    texts.extend(INDUSTRIES);
    texts.extend(PERSON_INTROS);
    texts.extend(ORG_INTROS);
    texts.extend(ORG_OUTROS);
    texts.extend(super::names::ORG_SUFFIXES);
    for a in Attribute::ALL {
        texts.extend(fact_sentences(a));
        texts.extend(question_templates(a));
    }
    texts
        .iter()
        .flat_map(|t| t.split(|c: char| !c.is_ascii_alphabetic()))
        .filter(|w| !w.is_empty())
        .map(|w| w.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_attribute_has_enough_templates_each_naming_the_subject() {
        for a in Attribute::ALL {
            let facts = fact_sentences(a);
            assert!(facts.len() >= 4, "{a:?}");
            let distinct: std::collections::BTreeSet<_> = facts.iter().collect();
            assert_eq!(distinct.len(), facts.len(), "{a:?}");
            for t in facts {
                assert!(t.contains("{name}") && t.contains("{value}"), "{t}");
            }
            let qs = question_templates(a);
            assert!(qs.len() >= SEEN_TEMPLATES + 2, "{a:?}");
            for t in qs {
                assert!(t.contains("{name}") && !t.contains("{value}"), "{t}");
            }
        }
    }

    #[test]
    fn fill_chooses_the_article() {
        assert_eq!(fill("{name} is {a} {value}.", "Ka Lo", "engineer"), "Ka Lo is an engineer.");
        assert_eq!(fill("{name} is {a} {value}.", "Ka Lo", "baker"), "Ka Lo is a baker.");
    }
}
