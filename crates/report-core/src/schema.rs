//! The JSON schema of a hand-written type that travels as a JSON string (lenient enums,
//! secrets), for generated code deriving `schemars::JsonSchema`.

/// Implements `schemars::JsonSchema` for `$name` as a plain string (the calling crate needs
/// `schemars`).
#[macro_export]
macro_rules! string_json_schema {
    ($name:ident) => {
        impl ::schemars::JsonSchema for $name {
            fn schema_name() -> ::std::string::String {
                stringify!($name).to_string()
            }
            fn json_schema(
                _: &mut ::schemars::r#gen::SchemaGenerator,
            ) -> ::schemars::schema::Schema {
                ::schemars::schema::SchemaObject {
                    instance_type: Some(::schemars::schema::InstanceType::String.into()),
                    ..Default::default()
                }
                .into()
            }
        }
    };
}
