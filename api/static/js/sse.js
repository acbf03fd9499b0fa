// The pages' event streams come from the tokenrelay JavaScript client
// (clients/js/src, served under /static/js/tokenrelay/): one implementation of
// the resuming loop for the pages and for every user of the npm package.
export {
  APIError as HttpError,
  ResumableEventStream,
  compareEventIds,
  createSseParser,
} from "./tokenrelay/index.js";
