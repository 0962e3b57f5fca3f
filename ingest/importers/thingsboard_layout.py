"""ThingsBoard's PostgreSQL tables the importer reads, as DDL (tests and bench build them from it)."""

from __future__ import annotations

# Column names and types as ThingsBoard's dao/src/main/resources/sql schema files declare them
# (the subset the importer reads; ts_kv is range-partitioned there and here).
CURRENT = """
CREATE TABLE device_profile (
    id uuid PRIMARY KEY, created_time bigint NOT NULL, name varchar(255), type varchar(255),
    transport_type varchar(255), profile_data jsonb, description varchar, is_default boolean, tenant_id uuid);
CREATE TABLE device (
    id uuid PRIMARY KEY, created_time bigint NOT NULL, additional_info varchar, customer_id uuid,
    device_profile_id uuid NOT NULL REFERENCES device_profile(id), device_data jsonb, type varchar(255),
    name varchar(255), label varchar(255), tenant_id uuid);
CREATE TABLE asset (id uuid PRIMARY KEY, created_time bigint NOT NULL, name varchar(255), type varchar(255));
CREATE TABLE key_dictionary (key varchar(255) NOT NULL PRIMARY KEY, key_id serial UNIQUE);
CREATE TABLE attribute_kv (
    entity_id uuid, attribute_type int, attribute_key int, bool_v boolean, str_v varchar(10000000),
    long_v bigint, dbl_v double precision, json_v json, last_update_ts bigint, version bigint DEFAULT 0,
    PRIMARY KEY (entity_id, attribute_type, attribute_key));
CREATE TABLE ts_kv (
    entity_id uuid NOT NULL, key int NOT NULL, ts bigint NOT NULL, bool_v boolean, str_v varchar(10000000),
    long_v bigint, dbl_v double precision, json_v json, PRIMARY KEY (entity_id, key, ts)
) PARTITION BY RANGE (ts);
CREATE TABLE ts_kv_indefinite PARTITION OF ts_kv DEFAULT;
CREATE TABLE ts_kv_dictionary (key varchar(255) NOT NULL PRIMARY KEY, key_id serial UNIQUE);
CREATE TABLE ts_kv_latest (
    entity_id uuid NOT NULL, key int NOT NULL, ts bigint NOT NULL, bool_v boolean, str_v varchar(10000000),
    long_v bigint, dbl_v double precision, json_v json, version bigint DEFAULT 1,
    PRIMARY KEY (entity_id, key));
CREATE TABLE alarm (
    id uuid PRIMARY KEY, created_time bigint NOT NULL, ack_ts bigint, clear_ts bigint,
    additional_info varchar, end_ts bigint, originator_id uuid, originator_type integer,
    propagate boolean, severity varchar(255),
    start_ts bigint, tenant_id uuid, type varchar(255), acknowledged boolean, cleared boolean);
"""

# Before 3.5/3.7: attributes keep scope and key names inline; alarms keep one status string.
OLDER = (
    CURRENT.replace(
        "entity_id uuid, attribute_type int, attribute_key int,",
        "entity_type varchar(255), entity_id uuid, attribute_type varchar(255), attribute_key varchar(255),",
    )
    .replace(
        "PRIMARY KEY (entity_id, attribute_type, attribute_key)",
        "PRIMARY KEY (entity_type, entity_id, attribute_type, attribute_key)",
    )
    .replace(
        "type varchar(255), acknowledged boolean, cleared boolean);",
        "type varchar(255), status varchar(255));",
    )
)
