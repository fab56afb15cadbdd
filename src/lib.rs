pub mod collect;
pub mod model;
