// GraphiQL on Port's own assets: the page works without internet. Adapted from
// Strawberry's graphiql.html (MIT); moved out of the page so that its
// Content-Security-Policy needs no inline script.
(function () {
  "use strict";

  const EXAMPLE_QUERY = `# Port's GraphQL API: press the play button (Ctrl-Enter).
# Mutations need a token: add {"Authorization": "Bearer <token>"} under Headers.
{
  apps(first: 10) {
    edges {
      node {
        identifier
        name
        releases(first: 3) { edges { node { version } } }
      }
    }
  }
}
`;

  const parameters = {};
  for (const entry of window.location.search.slice(1).split("&")) {
    const eq = entry.indexOf("=");
    if (eq >= 0) {
      parameters[decodeURIComponent(entry.slice(0, eq))] = decodeURIComponent(
        entry.slice(eq + 1),
      );
    }
  }

  function updateURL(data) {
    Object.assign(parameters, data);
    const search =
      "?" +
      Object.keys(parameters)
        .filter((key) => Boolean(parameters[key]))
        .map((key) => encodeURIComponent(key) + "=" + encodeURIComponent(parameters[key]))
        .join("&");
    history.replaceState(null, null, search);
  }

  const fetchURL = window.location.href.split("?")[0];
  const socketURL = new URL(fetchURL);
  socketURL.protocol = socketURL.protocol === "http:" ? "ws:" : "wss:";
  socketURL.hash = "";

  const headers = {};
  const csrfToken = Cookies.get("csrftoken");
  if (csrfToken) {
    headers["x-csrftoken"] = csrfToken;
  }

  const fetcher = GraphiQL.createFetcher({
    url: fetchURL,
    headers: headers,
    subscriptionUrl: socketURL.toString(),
  });

  function PortGraphiQL() {
    const [query, setQuery] = React.useState(parameters.q || EXAMPLE_QUERY);
    const [variables, setVariables] = React.useState(parameters.variables);
    const [editorHeaders, setHeaders] = React.useState(parameters.headers);
    const explorer = GraphiQLPluginExplorer.explorerPlugin();
    return React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultEditorToolsVisibility: true,
      plugins: [explorer],
      query: query,
      variables: variables,
      headers: editorHeaders,
      onEditQuery: (value) => {
        setQuery(value);
        updateURL({ q: value });
      },
      onEditVariables: (value) => {
        setVariables(value);
        updateURL({ variables: value });
      },
      onEditHeaders: setHeaders,
      inputValueDeprecation: true,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
    });
  }

  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(PortGraphiQL),
  );
})();
