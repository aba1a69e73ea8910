// routing (分类、交办): everything the console asks of it, under /api/routing.
import { get, post, put, request } from './http'

const base = '/api/routing'
const withFile = (file) => {
  const form = new FormData()
  form.append('file', file)
  return form
}
export const triage = () => get(`${base}/triage`)
export const decide = (id, body) => post(`${base}/triage/${id}`, body)
export const taxonomy = () => get(`${base}/taxonomy`)
export const departments = () => get(`${base}/departments`)
export const disputes = () => get(`${base}/disputes`)
export const directory = () => get(`${base}/directory`)
export const saveRule = (rule) => post(`${base}/directory/rules`, rule)
export const importDirectory = (file, table) =>
  request('POST', `${base}/directory/import`, { form: withFile(file), query: { table: file.name.endsWith('.csv') ? table : null } })
export const models = () => get(`${base}/models`)
export const train = (file, labelColumn) =>
  request('POST', `${base}/models`, { form: withFile(file), query: { label_column: labelColumn } })
export const evaluateModel = (file, labelColumn) =>
  request('POST', `${base}/models/evaluate`, { form: withFile(file), query: { label_column: labelColumn } })
export const retrain = () => post(`${base}/models/retrain`)
export const activateModel = (version) => post(`${base}/models/${encodeURIComponent(version)}/activate`)
// 专题 hot topics
export const topics = (limit = 100) => get(`${base}/topics`, { limit })
export const topic = (id) => get(`${base}/topics/${encodeURIComponent(id)}`)
export const changeTopic = (id, body) => put(`${base}/topics/${encodeURIComponent(id)}`, body)
export const mergeTopics = (id, others) => post(`${base}/topics/${encodeURIComponent(id)}/merge`, { topics: others })
export const splitTopic = (id, opinions) => post(`${base}/topics/${encodeURIComponent(id)}/split`, { opinions })
