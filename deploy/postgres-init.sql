-- One database per service that owns data (docker-compose runs this once, on an empty volume).
CREATE DATABASE users;
CREATE DATABASE products;
CREATE DATABASE graphql;
CREATE DATABASE chat;
CREATE DATABASE media;
CREATE DATABASE worker;
