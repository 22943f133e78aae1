// The seed's Apollo Server example, as the chapter wrote it (in-memory arrays), with the port
// taken from PORT so bench/graphql.sh can run it beside the platform.
const { ApolloServer, gql } = require('apollo-server');

const typeDefs = gql`
  type User {
    id: ID!
    name: String!
    email: String!
    posts: [Post!]!
  }

  type Post {
    id: ID!
    title: String!
    content: String
    author: User!
    createdAt: String!
  }

  type Query {
    users: [User!]!
    user(id: ID!): User
    posts: [Post!]!
    post(id: ID!): Post
  }

  type Mutation {
    createUser(name: String!, email: String!): User!
    createPost(title: String!, content: String, authorId: ID!): Post!
  }
`;

const users = [
  { id: '1', name: 'John', email: 'john@example.com' },
  { id: '2', name: 'Jane', email: 'jane@example.com' },
];

const posts = [
  { id: '1', title: 'GraphQL Intro', content: 'Content...', authorId: '1', createdAt: '2023-01-15' },
  { id: '2', title: 'Apollo Server', content: 'Content...', authorId: '1', createdAt: '2023-02-20' },
  { id: '3', title: 'REST vs GraphQL', content: 'Content...', authorId: '2', createdAt: '2023-03-10' },
];

// bench/graphql.sh also runs it with BENCH_USERS=30 BENCH_POSTS=100, the data graphql-service
// holds in the same run, so both answer the same nested query over the same rows.
const benchUsers = Number(process.env.BENCH_USERS || 0);
const benchPosts = Number(process.env.BENCH_POSTS || 0);
if (benchUsers > 0 && benchPosts > 0) {
  users.length = 0;
  posts.length = 0;
  for (let n = 1; n <= benchUsers; n++) {
    users.push({ id: String(n), name: `Author ${n}`, email: `author-${n}@example.com` });
  }
  for (let n = 1; n <= benchPosts; n++) {
    posts.push({
      id: String(n),
      title: `Post ${n}`,
      content: 'Content...',
      authorId: String((n % benchUsers) + 1),
      createdAt: '2023-01-15',
    });
  }
}

const resolvers = {
  Query: {
    users: () => users,
    user: (_, { id }) => users.find(user => user.id === id),
    posts: () => posts,
    post: (_, { id }) => posts.find(post => post.id === id),
  },
  User: {
    posts: (parent) => posts.filter(post => post.authorId === parent.id),
  },
  Post: {
    author: (parent) => users.find(user => user.id === parent.authorId),
  },
  Mutation: {
    createUser: (_, { name, email }) => {
      const newUser = { id: String(users.length + 1), name, email };
      users.push(newUser);
      return newUser;
    },
    createPost: (_, { title, content, authorId }) => {
      const newPost = {
        id: String(posts.length + 1),
        title,
        content,
        authorId,
        createdAt: new Date().toISOString().split('T')[0],
      };
      posts.push(newPost);
      return newPost;
    },
  },
};

const server = new ApolloServer({ typeDefs, resolvers });

server.listen({ port: Number(process.env.PORT || 4000) }).then(({ url }) => {
  console.log(`Servidor GraphQL listo en ${url}`);
});
