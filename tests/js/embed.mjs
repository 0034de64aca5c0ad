// Loads an ONNX export of embeddinggemma with transformers.js, from local files only, and prints
// what the Python test compares with ONNX Runtime and SentencePiece, as one JSON object:
//   ids                 each text's token ids, tokenised alone
//   sentence_embedding  the model's `sentence_embedding` output for the texts as one padded batch
//   mean_pooled         the feature-extraction pipeline's own result: last_hidden_state,
//                       mean-pooled over the attention mask (it never reads sentence_embedding)
//
//   node embed.mjs EXPORT_DIR TEXTS.json
import { readFileSync } from "node:fs";
import path from "node:path";
import { env, pipeline } from "@huggingface/transformers";

const [directory, textsFile] = process.argv.slice(2);
if (!directory || !textsFile) {
  console.error("usage: node embed.mjs EXPORT_DIR TEXTS.json");
  process.exit(2);
}
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = path.dirname(path.resolve(directory)) + "/";

const texts = JSON.parse(readFileSync(textsFile, "utf8"));
// The dtype (which onnx/model*.onnx) comes from config.json's transformers.js_config.
const extractor = await pipeline("feature-extraction", path.basename(path.resolve(directory)), {
  device: "cpu",
});
const ids = texts.map((text) => Array.from(extractor.tokenizer(text).input_ids.data, Number));
const inputs = extractor.tokenizer(texts, { padding: true, truncation: true });
const { sentence_embedding } = await extractor.model(inputs);
const pooled = await extractor(texts, { pooling: "mean" });
console.log(JSON.stringify({
  ids,
  sentence_embedding: sentence_embedding.tolist(),
  mean_pooled: pooled.tolist(),
}));
