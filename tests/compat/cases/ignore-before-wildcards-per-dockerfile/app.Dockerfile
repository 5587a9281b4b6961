ARG BASE
FROM ${BASE}
COPY ignore/* /foo
