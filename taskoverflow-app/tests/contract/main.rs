//! The TaskOverflow contract over a real socket, on every todo-store engine.
//!
//! Each case in `cases.rs` runs once per engine, as `sqlite::<case>` and `postgres::<case>`,
//! against its own fresh database (see `fixture.rs` for how PostgreSQL is found or skipped).
//! `embedded.rs` covers what only the embedded default does: a data directory that survives
//! restarts, and the web UI.

mod cases;
mod embedded;
mod fixture;

/// Declares one `#[tokio::test]` per contract case, run on `$engine`.
macro_rules! contract_suite {
    ($engine:expr) => {
        contract_suite!(@cases $engine;
            health_answers_ok,
            list_is_an_empty_array_before_any_todo,
            list_returns_every_todo_in_id_order,
            create_answers_201_with_defaults_and_server_fields,
            create_keeps_every_given_field,
            create_refuses_extra_fields_before_anything_else,
            create_without_title_is_missing_title,
            create_refuses_wrong_types_with_a_message,
            create_enforces_length_limits_in_characters,
            create_refuses_bad_datetimes,
            create_refuses_bodies_that_are_not_objects,
            malformed_json_is_400,
            non_json_content_type_is_415,
            oversized_body_is_413,
            get_returns_the_todo,
            get_unknown_id_is_404_todo_not_found,
            non_integer_ids_are_404_todo_not_found,
            put_updates_given_fields_and_bumps_updated_at,
            put_empty_object_changes_nothing_but_updated_at,
            put_extra_fields_are_400_even_for_a_missing_id,
            put_unknown_id_is_404,
            put_bad_values_are_400_and_change_nothing,
            put_can_clear_nullable_fields,
            delete_returns_the_deleted_todo_and_removes_it,
            delete_unknown_id_is_200_empty_object,
            completed_filter_selects_by_state,
            completed_filter_refuses_other_values,
            window_filter_includes_past_due_and_excludes_no_deadline,
            window_filter_refuses_non_integers,
            filters_combine,
            accepted_datetime_inputs_are_stored_as_naive_utc,
            datetime_output_reads_back_unchanged,
            unknown_api_routes_are_json_404,
            wrong_methods_are_json_405,
            ical_path_is_not_a_todo_id,
        );
    };
    (@cases $engine:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                crate::fixture::run_case($engine, crate::cases::$case).await;
            }
        )*
    };
}

mod sqlite {
    contract_suite!(taskoverflow::store::Engine::Sqlite);
}

mod postgres {
    contract_suite!(taskoverflow::store::Engine::Postgres);
}
