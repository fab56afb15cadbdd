pub mod alert;
pub mod model;
