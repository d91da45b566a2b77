-- One login role and one database per service, each database owned by its service's role,
-- so no service can read or change another's tables (as in production).
CREATE ROLE kosha_catalog LOGIN PASSWORD 'kosha-dev-catalog';
CREATE DATABASE kosha_catalog OWNER kosha_catalog;

CREATE ROLE kosha_inventory LOGIN PASSWORD 'kosha-dev-inventory';
CREATE DATABASE kosha_inventory OWNER kosha_inventory;

CREATE ROLE kosha_scheduler LOGIN PASSWORD 'kosha-dev-scheduler';
CREATE DATABASE kosha_scheduler OWNER kosha_scheduler;

CREATE ROLE kosha_order LOGIN PASSWORD 'kosha-dev-order';
CREATE DATABASE kosha_order OWNER kosha_order;

CREATE ROLE kosha_purchase_order LOGIN PASSWORD 'kosha-dev-po';
CREATE DATABASE kosha_purchase_order OWNER kosha_purchase_order;
