//! The vocabulary as command-line values: `--by cpu|mem|io|net` is [`Resource`] itself, so the
//! accepted words, the help text and the stored text are one list.

use clap::builder::PossibleValue;

use crate::model::Resource;

impl clap::ValueEnum for Resource {
    fn value_variants<'a>() -> &'a [Self] {
        &Resource::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.as_str()))
    }
}

impl clap::ValueEnum for crate::model::Grouping {
    fn value_variants<'a>() -> &'a [Self] {
        &crate::model::Grouping::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.as_str()))
    }
}
